//! Zero NACKs: every example folder, and a generated set of valid configs
//! covering each VirtualService, DestinationRule, Sidecar and Gateway
//! field, are pushed to a real Envoy (a sidecar, and a router for the
//! Gateways), which must accept all of it.

use std::path::PathBuf;
use std::time::Duration;

use integration_tests::mesh::dump_section;
use integration_tests::ports::free_port;
use integration_tests::traffic::{
    config_dump_at, destination_rule, ensure_envoy_took_all, listener_names, resource,
    route_config_names, service_on, sidecar, tcp_virtual_service, virtual_service, TrafficMesh,
};
use serde_json::Value;

fn example(folder: &str) -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(folder);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("example folder") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        out.push((name, std::fs::read_to_string(&path).expect("readable")));
    }
    out
}

/// The `name` of each entry of a config dump section, at `pointer`.
fn names(dump: &Value, suffix: &str, field: &str, pointer: &str) -> Vec<String> {
    dump_section(dump, suffix, field)
        .into_iter()
        .filter_map(|v| v.pointer(pointer)?.as_str().map(ToString::to_string))
        .collect()
}

/// Starts a mesh on `files`, waits until Envoy holds every route
/// configuration and listener named, then checks that nothing was rejected
/// by Envoy or by validation.
async fn accepted_whole(files: &[(String, String)], routes: &[String], listeners: &[String]) {
    let files: Vec<(&str, String)> = files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    let configz = mesh
        .discovery
        .json("/debug/configz")
        .await
        .expect("configz");
    for section in ["errors", "problems"] {
        assert_eq!(
            configz[section],
            Value::Array(vec![]),
            "{section} in the config: {configz}"
        );
    }
    integration_tests::wait::until("Envoy to hold the config", Duration::from_secs(30), || {
        let mesh = &mesh;
        async move {
            let dump = mesh.config_dump().await.map_err(|e| e.to_string())?;
            let have_routes = names(
                &dump,
                "RoutesConfigDump",
                "dynamic_route_configs",
                "/route_config/name",
            );
            let have_listeners = names(&dump, "ListenersConfigDump", "dynamic_listeners", "/name");
            let missing: Vec<&String> = routes
                .iter()
                .filter(|r| !have_routes.contains(r))
                .chain(listeners.iter().filter(|l| !have_listeners.contains(l)))
                .collect();
            if missing.is_empty() {
                Ok(Some(()))
            } else {
                Err(format!(
                    "missing {missing:?}; have {have_routes:?} {have_listeners:?}"
                ))
            }
        }
    })
    .await
    .expect("Envoy takes the config");
    mesh.ensure_nothing_rejected()
        .await
        .expect("Envoy took all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_example_is_accepted_whole() {
    accepted_whole(
        &example("mesh"),
        &["9080".into()],
        &["127.0.0.1_9080".into()],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traffic_example_is_accepted_whole() {
    accepted_whole(
        &example("traffic"),
        &["8000".into(), "8001".into(), "8002".into()],
        &[
            "127.0.0.1_8001".into(),
            "127.0.0.1_5432".into(),
            "127.0.0.1_8443".into(),
        ],
    )
    .await;
}

/// One HTTP rule per VirtualService feature (each on its own service), one
/// policy per DestinationRule feature, and TCP rules: all valid, all taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_configs_covering_every_field_are_accepted() {
    let http_rules = [
        "match: [{uri: {exact: /a}}, {uri: {prefix: /b}}, {uri: {regex: \"/c/[0-9]+\"}}]",
        "match: [{headers: {x-a: {exact: a}, x-b: {prefix: b}, x-c: {regex: \"c+\"}, x-d: {}}}]",
        "match: [{withoutHeaders: {x-a: {exact: a}, x-d: {}}, method: {exact: GET}}]",
        "match: [{authority: {prefix: api}, scheme: {exact: http}, queryParams: {q: {exact: \"1\"}, r: {regex: \"[a-z]+\"}, s: {}}}]",
        "match: [{uri: {prefix: /Case}, ignoreUriCase: true, port: 1}]",
        "timeout: 1.5s",
        "retries: {attempts: 4, perTryTimeout: 250ms, retryOn: \"5xx,gateway-error,reset,connect-failure,retriable-4xx,refused-stream,409\"}",
        "retries: {attempts: 0}",
        "fault: {delay: {fixedDelay: 100ms, percentage: {value: 12.5}}, abort: {httpStatus: 429, percentage: {value: 0.001}}}",
        "fault: {abort: {httpStatus: 503}}",
        "mirror: {host: SELF, port: {number: PORT}}\n    mirrorPercentage: {value: 33.3}",
        "mirror: {host: SELF}",
        "rewrite: {uri: /new, authority: other.example}",
        "rewrite: {uriRegexRewrite: {match: \"^/(.*)$\", rewrite: \"/v2/\\\\1\"}}",
        "headers: {request: {set: {x-a: a}, add: {x-b: b}, remove: [x-c]}, response: {set: {x-d: d}, add: {x-e: e}, remove: [x-f]}}",
        "corsPolicy: {allowOrigins: [{exact: \"https://a\"}, {prefix: \"https://b\"}, {regex: \".*\"}], allowMethods: [GET], allowHeaders: [x-a], exposeHeaders: [x-b], maxAge: 1m, allowCredentials: false}",
    ];
    let actions = [
        "redirect: {uri: /x, authority: y.example, port: 8080, scheme: https, redirectCode: 307}",
        "redirect: {authority: z.example}",
        "directResponse: {status: 503, body: {string: down}}",
        "directResponse: {status: 204}",
    ];
    let policies = [
        "loadBalancer: {simple: ROUND_ROBIN}",
        "loadBalancer: {simple: RANDOM}",
        "loadBalancer: {simple: LEAST_REQUEST}",
        "loadBalancer: {simple: LEAST_CONN}",
        "loadBalancer: {simple: PASSTHROUGH}",
        "loadBalancer: {consistentHash: {httpHeaderName: x-user, minimumRingSize: 64}}",
        "loadBalancer: {consistentHash: {httpCookie: {name: c, path: /, ttl: 10s}}}",
        "loadBalancer: {consistentHash: {useSourceIp: true}}",
        "loadBalancer: {consistentHash: {httpQueryParameterName: u}}",
        "connectionPool: {tcp: {maxConnections: 3, connectTimeout: 250ms}, http: {http1MaxPendingRequests: 2, http2MaxRequests: 5, maxRequestsPerConnection: 1, maxRetries: 2, idleTimeout: 30s}}",
        "outlierDetection: {consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 30, minHealthPercent: 20}",
        "outlierDetection: {consecutive5xxErrors: 0}",
        "portLevelSettings: [{port: {number: PORT}, loadBalancer: {simple: RANDOM}, connectionPool: {tcp: {maxConnections: 1}}, outlierDetection: {consecutiveGatewayErrors: 1}}]",
    ];
    let mut files = Vec::new();
    let mut routes = Vec::new();
    let mut listeners = Vec::new();
    let endpoint = free_port().expect("port");
    let add_service = |name: &str, protocol: &str, files: &mut Vec<(String, String)>| {
        let port = free_port().expect("port");
        files.push((
            format!("{name}.yaml"),
            service_on(name, port, protocol, &[(endpoint, &[("version", "v1")])]),
        ));
        port
    };
    for (i, rule) in http_rules.iter().chain(actions.iter()).enumerate() {
        let name = format!("http{i}");
        let port = add_service(&name, "HTTP", &mut files);
        let rule = rule
            .replace("SELF", &name)
            .replace("PORT", &port.to_string());
        let forward = if rule.starts_with("redirect") || rule.starts_with("directResponse") {
            String::new()
        } else {
            format!("    route: [{{destination: {{host: {name}, subset: v1}}}}]\n")
        };
        files.push((
            format!("{name}-vs.yaml"),
            virtual_service(&name, &format!("  - name: feature\n    {rule}\n{forward}")),
        ));
        files.push((format!("{name}-dr.yaml"), subset_rule(&name, "")));
        routes.push(port.to_string());
    }
    for (i, policy) in policies.iter().enumerate() {
        let name = format!("policy{i}");
        let port = add_service(&name, if i % 2 == 0 { "HTTP" } else { "HTTP2" }, &mut files);
        let policy = policy.replace("PORT", &port.to_string());
        files.push((
            format!("{name}-dr.yaml"),
            subset_rule(&name, &format!("  trafficPolicy:\n    {policy}\n")),
        ));
        routes.push(port.to_string());
    }
    let tcp = add_service("tcp0", "TCP", &mut files);
    files.push((
        "tcp0-vs.yaml".into(),
        tcp_virtual_service(
            "tcp0",
            &format!(
                "  - match: [{{port: {tcp}}}]
    route:
    - {{destination: {{host: tcp0, subset: v1}}, weight: 30}}
    - {{destination: {{host: tcp0}}, weight: 70}}
"
            ),
        ),
    ));
    files.push(("tcp0-dr.yaml".into(), subset_rule("tcp0", "")));
    listeners.push(format!("127.0.0.1_{tcp}"));
    // Sidecar: one for the whole namespace, which scopes the test proxy
    // (every generated service is in its namespace, so all stay), and one
    // for other workloads.
    files.push((
        "scope.yaml".into(),
        sidecar(
            "default",
            "  egress: [{hosts: [\"./*\", \"istio-system/*\", \"*/*.example.com\", \"~/*\"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
",
        ),
    ));
    files.push((
        "scope-selected.yaml".into(),
        sidecar(
            "selected",
            "  workloadSelector: {labels: {app: other}}
  egress: [{hosts: [\"*/*\"]}]
  outboundTrafficPolicy: {mode: ALLOW_ANY}
",
        ),
    ));
    accepted_whole(&files, &routes, &listeners).await;
}

/// Gateways covering each Gateway field, with VirtualServices bound to
/// them in each way, taken by a real Envoy run as a router.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_gateways_are_accepted_by_a_router() {
    let endpoint = free_port().expect("port");
    let ports = [
        free_port().expect("port"),
        free_port().expect("port"),
        free_port().expect("port"),
    ];
    let gateway = |name: &str, selector: &str, servers: &str| {
        resource(
            "Gateway",
            name,
            &format!("  selector: {{{selector}}}\n  servers:\n{servers}"),
        )
    };
    let bound = |name: &str, hosts: &str, gateways: &str, rule: &str| {
        resource(
            "VirtualService",
            name,
            &format!(
                "  hosts: [{hosts}]
  gateways: [{gateways}]
  http:
  - {rule}
    route: [{{destination: {{host: web, subset: v1}}}}]
"
            ),
        )
    };
    let [p1, p2, p3] = ports;
    let files = [
        (
            "web.yaml".to_string(),
            service_on("web", free_port().expect("port"), "HTTP", &[(endpoint, &[("version", "v1")])]),
        ),
        ("web-dr.yaml".to_string(), subset_rule("web", "")),
        (
            "gw-a.yaml".to_string(),
            gateway(
                "gw-a",
                "istio: ingressgateway",
                &format!(
                    "  - {{port: {{number: {p1}, name: http, protocol: HTTP}}, hosts: [\"*\"], bind: 127.0.0.1, name: plain}}
  - {{port: {{number: {p2}, name: http2, protocol: HTTP2}}, hosts: [\"default/*.example.com\"], bind: 127.0.0.1}}
  - {{port: {{number: {p3}, name: grpc, protocol: GRPC, targetPort: {p3}}}, hosts: [api.example.com], bind: 127.0.0.1}}
"
                ),
            ),
        ),
        (
            "gw-b.yaml".to_string(),
            gateway(
                "gw-b",
                "istio: ingressgateway, tier: edge",
                &format!("  - {{port: {{number: {p1}, protocol: HTTP}}, hosts: [other.test], bind: 127.0.0.1}}\n"),
            ),
        ),
        (
            "gw-c.yaml".to_string(),
            gateway(
                "gw-c",
                "istio: egressgateway",
                "  - {port: {number: 80, protocol: HTTP}, hosts: [\"*\"]}\n",
            ),
        ),
        (
            "vs-all.yaml".to_string(),
            bound("all", "\"*\"", "gw-a", "retries: {attempts: 1}\n    timeout: 2s"),
        ),
        (
            "vs-www.yaml".to_string(),
            bound(
                "www",
                "www.example.com, other.test",
                "default/gw-a, gw-b",
                "match: [{uri: {prefix: /api}}]\n    rewrite: {uri: /}\n    fault: {abort: {httpStatus: 503, percentage: {value: 1}}}",
            ),
        ),
        (
            "vs-api.yaml".to_string(),
            bound("api", "api.example.com", "gw-a, mesh", "headers: {request: {set: {x-gw: a}}}"),
        ),
    ];
    let files: Vec<(&str, String)> = files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    let (_router, router_ports) = mesh
        .start_router("ingress-0", r#"{"istio":"ingressgateway","tier":"edge"}"#)
        .expect("router starts");
    let admin = router_ports.admin;
    let mut want_listeners: Vec<String> = ports.iter().map(|p| format!("127.0.0.1_{p}")).collect();
    want_listeners.sort();
    let mut want_routes: Vec<String> = ports.iter().map(|p| format!("http.{p}")).collect();
    want_routes.sort();
    integration_tests::wait::until(
        "the router to hold the config",
        Duration::from_secs(30),
        || {
            let (want_listeners, want_routes) = (&want_listeners, &want_routes);
            async move {
                let dump = config_dump_at(admin).await.map_err(|e| format!("{e:#}"))?;
                let have_listeners = listener_names(&dump);
                let have_routes = route_config_names(&dump);
                if &have_listeners == want_listeners && &have_routes == want_routes {
                    Ok(Some(()))
                } else {
                    Err(format!("have {have_listeners:?} {have_routes:?}"))
                }
            }
        },
    )
    .await
    .expect("the router takes the config");
    ensure_envoy_took_all(router_ports.admin)
        .await
        .expect("the router's Envoy took all");
    mesh.ensure_nothing_rejected()
        .await
        .expect("nothing rejected");
}

fn subset_rule(name: &str, policy: &str) -> String {
    destination_rule(
        name,
        &format!(
            "{policy}  subsets:
  - name: v1
    labels: {{version: v1}}
    trafficPolicy: {{loadBalancer: {{simple: RANDOM}}}}
"
        ),
    )
}
