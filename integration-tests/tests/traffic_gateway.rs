//! A Gateway proven by real requests through a real Envoy run as a
//! `router` (`pilot-agent proxy router`): it listens on its servers' ports
//! and routes the hosts of the VirtualServices bound to it, and nothing
//! else.

use integration_tests::client::Call;
use integration_tests::echo::EchoServer;
use integration_tests::ports::free_port;
use integration_tests::traffic::{
    config_dump_at, ensure_envoy_took_all, host, listener_names, resource, route_config_names,
    service, TrafficMesh,
};

fn public(name: &str, public_host: &str, to: &str) -> String {
    resource(
        "VirtualService",
        name,
        &format!(
            "  hosts: [{public_host}]\n  gateways: [ingress]\n  http:\n  - route: [{{destination: {{host: {to}}}}}]\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_routes_the_virtual_services_bound_to_it() {
    let api = EchoServer::plain("api").await.expect("echo server");
    let web = EchoServer::plain("web").await.expect("echo server");
    let (gw_port, api_port, web_port) = (
        free_port().expect("port"),
        free_port().expect("port"),
        free_port().expect("port"),
    );
    let gateway = resource(
        "Gateway",
        "ingress",
        &format!(
            "  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {gw_port}, name: http, protocol: HTTP}}
    bind: 127.0.0.1
    hosts: [\"*.example.test\"]
"
        ),
    );
    let mesh_only = resource(
        "VirtualService",
        "api-mesh",
        "  hosts: [api]\n  http:\n  - route: [{destination: {host: api}}]\n",
    );
    let mut mesh = TrafficMesh::start(&[
        ("api.yaml", service("api", api_port, &[(&api, &[])])),
        ("web.yaml", service("web", web_port, &[(&web, &[])])),
        ("gateway.yaml", gateway),
        (
            "api-public.yaml",
            public("api-public", "api.example.test", "api"),
        ),
        (
            "web-public.yaml",
            public("web-public", "web.example.test", "web"),
        ),
        // Bound to the gateway, but for a host its server does not admit.
        ("outside.yaml", public("outside", "other.test", "api")),
        ("api-mesh.yaml", mesh_only),
    ])
    .await
    .expect("mesh starts");
    let (mut router, router_ports) = mesh
        .start_router("ingress-0", r#"{"istio":"ingressgateway"}"#)
        .expect("router starts");

    let to_api = Call::get("api.example.test", "/v1");
    mesh.wait_for("the gateway's route to api", gw_port, &to_api, |r| {
        r.who() == "api"
    })
    .await
    .expect("the gateway routes api.example.test");
    let to_web = Call::get("web.example.test", "/");
    let r = mesh.call(gw_port, &to_web).await.expect("answer");
    assert_eq!(r.who(), "web");
    for (h, why) in [
        ("other.test", "a host the server does not admit"),
        (
            host("api").as_str(),
            "a VirtualService bound only to the mesh",
        ),
        (
            "nothing.example.test",
            "an admitted host no VirtualService claims",
        ),
    ] {
        let r = mesh
            .call(gw_port, &Call::get(h, "/"))
            .await
            .expect("answer");
        assert_eq!(r.status, 404, "{why}: {}", r.body);
    }
    router.check_running().expect("router runs");

    let dump = config_dump_at(router_ports.admin)
        .await
        .expect("config dump");
    assert_eq!(
        listener_names(&dump),
        [format!("127.0.0.1_{gw_port}")],
        "a gateway gets its servers' listeners, no sidecar listeners"
    );
    assert_eq!(route_config_names(&dump), [format!("http.{gw_port}")]);

    mesh.write("web-public.yaml", "").expect("write");
    mesh.wait_for("web to leave the gateway", gw_port, &to_web, |r| {
        r.status == 404
    })
    .await
    .expect("unbinding removes the host");
    let r = mesh.call(gw_port, &to_api).await.expect("answer");
    assert_eq!(r.who(), "api", "the other host keeps routing");

    ensure_envoy_took_all(router_ports.admin)
        .await
        .expect("the gateway's Envoy took all");
    mesh.ensure_nothing_rejected().await.expect("no NACKs");
}
