//! VirtualService HTTP rules proven by real requests through a real Envoy:
//! matches pick destinations, weights split, faults abort and delay,
//! retries hide a flaky upstream, timeouts cut a slow one, mirrors copy,
//! rewrites, redirects, direct responses, header edits and CORS show in
//! what the upstream and the client see.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use integration_tests::client::Call;
use integration_tests::echo::{tcp_name, Behaviour, EchoServer, TcpNameServer};
use integration_tests::ports::free_port;
use integration_tests::traffic::{
    count, host, service, service_on, tcp_virtual_service, version_subsets, versioned_shop,
    virtual_service, TrafficMesh,
};

/// Every kind of match condition sends its requests to v2; the rest go to v1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_match_condition_picks_its_destination() {
    let (v1, v2) = (
        EchoServer::plain("v1").await.expect("echo server"),
        EchoServer::plain("v2").await.expect("echo server"),
    );
    let port = free_port().expect("port");
    let to_v2 = "    route: [{destination: {host: shop, subset: v2}}]\n";
    let rules = [
        "  - name: by-header\n    match: [{headers: {x-user: {exact: jason}}}]\n",
        "  - name: by-header-regex\n    match: [{headers: {x-tier: {regex: \"gold|platinum\"}}}]\n",
        "  - name: present-without\n    match: [{headers: {x-canary: {}}, withoutHeaders: {x-opt-out: {}}}]\n",
        "  - name: by-prefix-any-case\n    match: [{uri: {prefix: /beta/}, ignoreUriCase: true}]\n",
        "  - name: by-exact-uri\n    match: [{uri: {exact: /exact}}]\n",
        "  - name: by-regex-uri\n    match: [{uri: {regex: \"/items/[0-9]+\"}}]\n",
        "  - name: by-method\n    match: [{method: {exact: DELETE}}]\n",
        "  - name: by-authority\n    match: [{authority: {exact: shop.default}}]\n",
        "  - name: by-query\n    match: [{queryParams: {canary: {exact: \"yes\"}}}]\n",
        "  - name: other-port\n    match: [{port: 1, uri: {prefix: /}}]\n",
    ];
    let mut http: String = rules.iter().map(|r| format!("{r}{to_v2}")).collect();
    http.push_str("  - route: [{destination: {host: shop, subset: v1}}]\n");
    let files = versioned_shop(
        port,
        &v1,
        &v2,
        [("shop-vs.yaml", virtual_service("shop", &http))],
    );
    let mut mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    let shop = host("shop");
    mesh.wait_for("the default rule", port, &Call::get(&shop, "/"), |r| {
        r.who() == "v1"
    })
    .await
    .expect("routes");

    let cases: Vec<(&str, Call, &str)> = vec![
        (
            "header exact",
            Call::get(&shop, "/").header("x-user", "jason"),
            "v2",
        ),
        (
            "header exact, other value",
            Call::get(&shop, "/").header("x-user", "ann"),
            "v1",
        ),
        (
            "header regex",
            Call::get(&shop, "/").header("x-tier", "gold"),
            "v2",
        ),
        (
            "header regex is anchored",
            Call::get(&shop, "/").header("x-tier", "golden"),
            "v1",
        ),
        (
            "header present",
            Call::get(&shop, "/").header("x-canary", "anything"),
            "v2",
        ),
        (
            "present but withoutHeaders also present",
            Call::get(&shop, "/")
                .header("x-canary", "1")
                .header("x-opt-out", "1"),
            "v1",
        ),
        ("prefix, other case", Call::get(&shop, "/BETA/page"), "v2"),
        ("exact uri", Call::get(&shop, "/exact"), "v2"),
        ("exact uri is exact", Call::get(&shop, "/exact/more"), "v1"),
        ("regex uri", Call::get(&shop, "/items/42"), "v2"),
        (
            "regex uri must match all",
            Call::get(&shop, "/items/42x"),
            "v1",
        ),
        ("method", Call::get(&shop, "/").method("DELETE"), "v2"),
        ("authority", Call::get("shop.default", "/"), "v2"),
        ("query parameter", Call::get(&shop, "/?canary=yes"), "v2"),
        (
            "query parameter, other value",
            Call::get(&shop, "/?canary=no"),
            "v1",
        ),
        ("nothing matches", Call::get(&shop, "/plain"), "v1"),
    ];
    for (what, call, expected) in cases {
        let r = mesh.call(port, &call).await.expect("request");
        assert_eq!(r.who(), expected, "{what}: {call:?} got {}", r.body);
    }
    mesh.ensure_nothing_rejected()
        .await
        .expect("Envoy took all");
}

/// A 50/50 split lands within tolerance, and each destination's own header
/// edits apply only to the requests it gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_traffic_and_destination_headers_follow_it() {
    let (v1, v2) = (
        EchoServer::plain("v1").await.expect("echo server"),
        EchoServer::plain("v2").await.expect("echo server"),
    );
    let port = free_port().expect("port");
    let http = "  - route:
    - destination: {host: shop, subset: v1}
      weight: 50
      headers: {request: {set: {x-picked: one}}, response: {set: {x-served-by: one}}}
    - destination: {host: shop, subset: v2}
      weight: 50
      headers: {request: {set: {x-picked: two}}, response: {set: {x-served-by: two}}}
";
    let files = versioned_shop(
        port,
        &v1,
        &v2,
        [("shop-vs.yaml", virtual_service("shop", http))],
    );
    let mut mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    let call = Call::get(&host("shop"), "/");
    mesh.wait_for("the split", port, &call, |r| {
        r.header("x-served-by").is_some()
    })
    .await
    .expect("routes");
    let replies = mesh.calls(port, &call, 200).await.expect("requests");
    let counts = count(&replies);
    for v in ["v1", "v2"] {
        let n = counts.get(v).copied().unwrap_or(0);
        // 50/50 of 200: 100 expected, a standard deviation of about 7.
        assert!((65..=135).contains(&n), "{v} got {n} of 200: {counts:?}");
    }
    for r in &replies {
        let (expected, seen) = match r.who().as_str() {
            "v1" => ("one", r.echo().map(|e| e.headers["x-picked"].clone())),
            _ => ("two", r.echo().map(|e| e.headers["x-picked"].clone())),
        };
        assert_eq!(
            seen.as_deref(),
            Some(expected),
            "request header for {}",
            r.who()
        );
        assert_eq!(r.header("x-served-by"), Some(expected), "response header");
    }
    mesh.ensure_nothing_rejected()
        .await
        .expect("Envoy took all");
}

/// An abort fault returns its status at its rate without reaching the
/// upstream; a delay fault holds the request for at least its delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_abort_at_their_rate_and_delay_requests() {
    let app = EchoServer::plain("app").await.expect("echo server");
    let port = free_port().expect("port");
    let http = "  - match: [{uri: {prefix: /slow}}]
    fault: {delay: {fixedDelay: 2s, percentage: {value: 100}}}
    route: [{destination: {host: shop}}]
  - match: [{uri: {prefix: /never}}]
    fault: {abort: {httpStatus: 500}}
    route: [{destination: {host: shop}}]
  - fault: {abort: {httpStatus: 418, percentage: {value: 50}}}
    route: [{destination: {host: shop}}]
";
    let files = [
        ("shop.yaml", service("shop", port, &[(&app, &[])])),
        ("shop-vs.yaml", virtual_service("shop", http)),
    ];
    let mut mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    let shop = host("shop");
    mesh.wait_for("the rules", port, &Call::get(&shop, "/never"), |r| {
        r.status == 200
    })
    .await
    .expect("routes");

    let before = app.hits();
    let replies = mesh
        .calls(port, &Call::get(&shop, "/"), 200)
        .await
        .expect("requests");
    let aborted = replies.iter().filter(|r| r.status == 418).count();
    let passed = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        aborted + passed,
        200,
        "only 418 or 200: {:?}",
        count(&replies)
    );
    assert!(
        (65..=135).contains(&aborted),
        "{aborted} of 200 aborted at 50%"
    );
    assert_eq!(
        app.hits() - before,
        passed,
        "aborted requests never reach the app"
    );

    // Istio applies a fault without a percentage to no request.
    let never = mesh
        .calls(port, &Call::get(&shop, "/never"), 20)
        .await
        .expect("requests");
    assert!(never.iter().all(|r| r.status == 200), "{:?}", count(&never));

    let started = Instant::now();
    let slow = mesh
        .call(port, &Call::get(&shop, "/slow"))
        .await
        .expect("slow");
    assert_eq!(slow.status, 200);
    // Envoy's timers may fire a few milliseconds early; a request that was
    // not delayed takes a few milliseconds in all.
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "a 2s delay fault took {:?}",
        started.elapsed()
    );
    let stats = mesh.admin().stats("fault").await.expect("stats");
    let injected = |suffix: &str| {
        stats
            .iter()
            .filter(|(k, _)| k.ends_with(suffix))
            .map(|(_, v)| *v)
            .sum::<u64>()
    };
    assert!(injected("fault.delays_injected") >= 1, "{stats:?}");
    assert_eq!(
        injected("fault.aborts_injected"),
        aborted as u64,
        "{stats:?}"
    );
    mesh.ensure_nothing_rejected()
        .await
        .expect("Envoy took all");
}

/// Retries turn a flaky upstream's 503s into 200s; `attempts: 0` turns them
/// off, and a rule without `retries` gets Istio's default (which retries 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_hide_a_flaky_upstream_unless_turned_off() {
    let flaky = EchoServer::start("flaky", Behaviour::FailEveryOther)
        .await
        .expect("flaky server");
    let port = free_port().expect("port");
    let rule = |retries: &str| {
        virtual_service(
            "shop",
            &format!("  - route: [{{destination: {{host: shop}}}}]\n{retries}"),
        )
    };
    let files = [
        ("shop.yaml", service("shop", port, &[(&flaky, &[])])),
        ("shop-vs.yaml", rule("    retries: {attempts: 0}\n")),
    ];
    let mut mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    let call = Call::get(&host("shop"), "/");
    mesh.wait_for("the route", port, &call, |r| r.echo().is_some())
        .await
        .expect("routes");
    let off = mesh.calls(port, &call, 20).await.expect("requests");
    let failed = off.iter().filter(|r| r.status == 503).count();
    assert_eq!(
        failed,
        10,
        "every other request fails without retries: {:?}",
        count(&off)
    );

    for (what, retries) in [
        (
            "explicit retries",
            "    retries: {attempts: 3, retryOn: 5xx}\n",
        ),
        ("Istio's default retries", ""),
    ] {
        mesh.write("shop-vs.yaml", &rule(retries)).expect("write");
        // Three successes in a row cannot happen without retries.
        mesh.wait_for(what, port, &call, |r| r.status == 200)
            .await
            .expect("retries apply");
        let hits = flaky.hits();
        let on = mesh.calls(port, &call, 20).await.expect("requests");
        assert!(
            on.iter().all(|r| r.status == 200),
            "{what}: {:?}",
            count(&on)
        );
        assert!(
            flaky.hits() - hits > 20,
            "{what}: the upstream saw the retries"
        );
    }
    mesh.ensure_nothing_rejected()
        .await
        .expect("Envoy took all");
}

/// A route timeout answers 504 when the upstream is slower than it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_cuts_a_slow_upstream() {
    let app = EchoServer::plain("app").await.expect("echo server");
    let port = free_port().expect("port");
    let files = [
        ("shop.yaml", service("shop", port, &[(&app, &[])])),
        (
            "shop-vs.yaml",
            virtual_service(
                "shop",
                "  - route: [{destination: {host: shop}}]\n    timeout: 300ms\n",
            ),
        ),
    ];
    let mut mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    let shop = host("shop");
    mesh.wait_for("the route", port, &Call::get(&shop, "/"), |r| {
        r.status == 200
    })
    .await
    .expect("routes");
    let slow = Call::get(&shop, "/").header("x-echo-delay-ms", "3000");
    let r = mesh.call(port, &slow).await.expect("request");
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(r.body.contains("upstream request timeout"), "{}", r.body);
    let fast = Call::get(&shop, "/").header("x-echo-delay-ms", "10");
    assert_eq!(mesh.call(port, &fast).await.expect("request").status, 200);
    mesh.ensure_nothing_rejected()
        .await
        .expect("Envoy took all");
}

/// Mirrored requests reach the shadow service, which sees Istio's
/// `-shadow` host; the client only ever sees the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_copies_requests_to_the_shadow() {
    let (primary, shadow) = (
        EchoServer::plain("primary").await.expect("echo server"),
        EchoServer::plain("shadow").await.expect("echo server"),
    );
    let (port, shadow_port) = (free_port().expect("port"), free_port().expect("port"));
    let files = [
        ("shop.yaml", service("shop", port, &[(&primary, &[])])),
        (
            "shadow.yaml",
            service("shadow", shadow_port, &[(&shadow, &[])]),
        ),
        (
            "shop-vs.yaml",
            virtual_service(
                "shop",
                "  - route: [{destination: {host: shop}}]
    mirror: {host: shadow}
    mirrorPercentage: {value: 100}
",
            ),
        ),
    ];
    let mut mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    let call = Call::get(&host("shop"), "/mirrored");
    mesh.wait_for("mirroring", port, &call, |_| shadow.hits() > 0)
        .await
        .expect("mirror applies");
    let before = shadow.hits();
    let replies = mesh.calls(port, &call, 10).await.expect("requests");
    assert!(
        replies.iter().all(|r| r.who() == "primary"),
        "{:?}",
        count(&replies)
    );
    integration_tests::wait::until("the 10 copies", Duration::from_secs(10), || {
        let n = shadow.hits() - before;
        async move { Ok((n >= 10).then_some(())).map_err(|()| String::new()) }
    })
    .await
    .expect("copies arrive");
    let copy = shadow.seen().pop().expect("a copy");
    assert_eq!(copy.path, "/mirrored");
    assert!(copy.host.contains("-shadow"), "mirror host {:?}", copy.host);
    mesh.ensure_nothing_rejected()
        .await
        .expect("Envoy took all");
}

/// Rewrites change what the upstream sees; redirects and direct responses
/// answer the client without reaching it; header edits apply both ways;
/// CORS preflights are answered for allowed origins only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_redirects_direct_responses_headers_and_cors() {
    let app = EchoServer::plain("app").await.expect("echo server");
    let port = free_port().expect("port");
    let http = "  - match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /new/, authority: rewritten.example}
    route: [{destination: {host: shop}}]
  - match: [{uri: {prefix: /regex/}}]
    rewrite: {uriRegexRewrite: {match: \"^/regex/([a-z]+)/([0-9]+)$\", rewrite: \"/\\\\2/\\\\1\"}}
    route: [{destination: {host: shop}}]
  - match: [{uri: {exact: /go}}]
    redirect: {uri: /landing, authority: elsewhere.example, redirectCode: 302}
  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: short and stout}}
  - match: [{uri: {prefix: /api}}]
    corsPolicy:
      allowOrigins: [{exact: \"https://allowed.example\"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      maxAge: 24h
    route: [{destination: {host: shop}}]
  - headers:
      request: {set: {x-set: from-mesh}, add: {x-add: added}, remove: [x-drop]}
      response: {set: {x-response: edited}, remove: [content-type]}
    route: [{destination: {host: shop}}]
";
    let files = [
        ("shop.yaml", service("shop", port, &[(&app, &[])])),
        ("shop-vs.yaml", virtual_service("shop", http)),
    ];
    let mut mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    let shop = host("shop");
    mesh.wait_for("the rules", port, &Call::get(&shop, "/teapot"), |r| {
        r.status == 418
    })
    .await
    .expect("routes");

    let r = mesh
        .call(port, &Call::get(&shop, "/old/page?q=1"))
        .await
        .expect("rewrite");
    let seen = r.echo().expect("echo");
    assert_eq!(seen.path, "/new/page?q=1");
    assert_eq!(seen.host, "rewritten.example");

    let r = mesh
        .call(port, &Call::get(&shop, "/regex/abc/123"))
        .await
        .expect("regex");
    assert_eq!(r.echo().expect("echo").path, "/123/abc");

    let hits = app.hits();
    let r = mesh
        .call(port, &Call::get(&shop, "/go"))
        .await
        .expect("redirect");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("http://elsewhere.example/landing")
    );
    let r = mesh
        .call(port, &Call::get(&shop, "/teapot"))
        .await
        .expect("direct");
    assert_eq!((r.status, r.body.as_str()), (418, "short and stout"));
    assert_eq!(app.hits(), hits, "neither reached the upstream");

    let r = mesh
        .call(
            port,
            &Call::get(&shop, "/plain")
                .header("x-set", "from-client")
                .header("x-add", "from-client")
                .header("x-drop", "secret"),
        )
        .await
        .expect("headers");
    let seen = r.echo().expect("echo");
    assert_eq!(
        seen.headers.get("x-set").map(String::as_str),
        Some("from-mesh")
    );
    assert_eq!(
        seen.headers.get("x-add").map(String::as_str),
        Some("from-client, added")
    );
    assert!(!seen.headers.contains_key("x-drop"), "{:?}", seen.headers);
    assert_eq!(r.header("x-response"), Some("edited"));
    assert_eq!(r.header("content-type"), None);

    let preflight = |origin: &str| {
        Call::get(&shop, "/api/items")
            .method("OPTIONS")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
    };
    let r = mesh
        .call(port, &preflight("https://allowed.example"))
        .await
        .expect("preflight");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://allowed.example")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET,POST"));
    assert_eq!(r.header("access-control-max-age"), Some("86400"));
    let r = mesh
        .call(port, &preflight("https://evil.example"))
        .await
        .expect("preflight");
    assert_eq!(r.header("access-control-allow-origin"), None);
    mesh.ensure_nothing_rejected()
        .await
        .expect("Envoy took all");
}

/// TCP rules split connections by weight on their port; a TCP service
/// without rules reaches all its endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_rules_split_connections_by_weight() {
    let a = TcpNameServer::start("a").await.expect("tcp server");
    let b = TcpNameServer::start("b").await.expect("tcp server");
    let port = free_port().expect("port");
    let db = service_on(
        "db",
        port,
        "TCP",
        &[
            (a.port(), &[("version", "v1")]),
            (b.port(), &[("version", "v2")]),
        ],
    );
    let weights = |w1: u32, w2: u32| {
        tcp_virtual_service(
            "db",
            &format!(
                "  - match: [{{port: 1}}]
    route: [{{destination: {{host: db, subset: v1}}}}]
  - match: [{{port: {port}}}]
    route:
    - {{destination: {{host: db, subset: v1}}, weight: {w1}}}
    - {{destination: {{host: db, subset: v2}}, weight: {w2}}}
"
            ),
        )
    };
    let files = [
        ("db.yaml", db),
        ("db-dr.yaml", version_subsets("db")),
        ("db-vs.yaml", weights(0, 100)),
    ];
    let mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    let listener = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let all_to = |name: &'static str| async move {
        for _ in 0..3 {
            match tcp_name(listener).await {
                Ok(n) if n == name => {}
                other => return Err(format!("got {other:?}")),
            }
        }
        Ok(Some(()))
    };
    integration_tests::wait::until("all connections to b", Duration::from_secs(30), || {
        all_to("b")
    })
    .await
    .expect("the tcp rule applies");

    mesh.write("db-vs.yaml", &weights(50, 50)).expect("write");
    integration_tests::wait::until("a connection to a", Duration::from_secs(30), || async {
        Ok((tcp_name(listener).await.map_err(|e| e.to_string())? == "a").then_some(()))
    })
    .await
    .expect("the split applies");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..100 {
        *counts
            .entry(tcp_name(listener).await.expect("connect"))
            .or_insert(0) += 1;
    }
    for name in ["a", "b"] {
        let n = counts.get(name).copied().unwrap_or(0);
        // 50/50 of 100: a standard deviation of 5.
        assert!((25..=75).contains(&n), "{name} got {n} of 100: {counts:?}");
    }
    mesh.ensure_nothing_rejected()
        .await
        .expect("Envoy took all");
}

/// An invalid edit of a VirtualService is rejected alone: its error names
/// the file, resource and field, `pilot_total_rejected_configs` counts it,
/// its last good version keeps routing, and a valid edit of another
/// resource still applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_leaves_traffic_unchanged() {
    let (v1, v2) = (
        EchoServer::plain("v1").await.expect("echo server"),
        EchoServer::plain("v2").await.expect("echo server"),
    );
    let (port, other_port) = (free_port().expect("port"), free_port().expect("port"));
    let other = EchoServer::plain("other").await.expect("echo server");
    let split = |w1: u32, w2: u32| {
        virtual_service(
            "shop",
            &format!(
                "  - route:
    - {{destination: {{host: shop, subset: v1}}, weight: {w1}}}
    - {{destination: {{host: shop, subset: v2}}, weight: {w2}}}
"
            ),
        )
    };
    let files = versioned_shop(port, &v1, &v2, [("shop-vs.yaml", split(0, 100))]);
    let mut mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    let call = Call::get(&host("shop"), "/");
    mesh.wait_for("all to v2", port, &call, |r| r.who() == "v2")
        .await
        .expect("routes");

    mesh.write("shop-vs.yaml", &split(60, 60)).expect("write");
    mesh.wait_for_configz(
        "errors",
        &[
            "shop-vs.yaml",
            "VirtualService default/shop",
            "spec.http[0].route",
            "120",
        ],
    )
    .await
    .expect("the bad edit is reported");
    let metrics = mesh.discovery.get("/metrics").await.expect("metrics").body;
    assert!(
        metrics
            .lines()
            .any(|l| l == "pilot_total_rejected_configs{type=\"VirtualService\"} 1"),
        "the rejection is counted once:\n{metrics}"
    );
    // A valid change made after the bad one still applies...
    mesh.write(
        "other.yaml",
        &service("other", other_port, &[(&other, &[])]),
    )
    .expect("write");
    mesh.wait_for(
        "the other service",
        other_port,
        &Call::get(&host("other"), "/"),
        |r| r.who() == "other",
    )
    .await
    .expect("a valid change applies");
    // ...and the rejected rule's last good version still routes.
    let replies = mesh.calls(port, &call, 20).await.expect("requests");
    assert!(
        replies.iter().all(|r| r.who() == "v2"),
        "{:?}",
        count(&replies)
    );
    mesh.ensure_nothing_rejected()
        .await
        .expect("Envoy took all");
}

/// Two VirtualServices for one host: the older routes, as in Istio, even
/// though the newer sorts first by name; the loser is reported and takes
/// over once the older is gone. An edit that names a subset no
/// DestinationRule defines is rejected and the last good version routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_go_to_the_older_rule_and_dangling_subsets_are_rejected() {
    let (v1, v2) = (
        EchoServer::plain("v1").await.expect("echo server"),
        EchoServer::plain("v2").await.expect("echo server"),
    );
    let port = free_port().expect("port");
    let rule = |name: &str, created: &str, subset: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default, creationTimestamp: \"{created}\"}}
spec:
  hosts: [shop]
  http:
  - route:
    - destination: {{host: shop, subset: {subset}}}
"
        )
    };
    let files = versioned_shop(
        port,
        &v1,
        &v2,
        [
            (
                "a-newer.yaml",
                rule("a-newer", "2024-06-02T00:00:00Z", "v2"),
            ),
            (
                "z-older.yaml",
                rule("z-older", "2024-06-01T00:00:00Z", "v1"),
            ),
        ],
    );
    let mut mesh = TrafficMesh::start(&files).await.expect("mesh starts");
    let call = Call::get(&host("shop"), "/");
    mesh.wait_for("the older rule", port, &call, |r| r.who() == "v1")
        .await
        .expect("routes");
    let replies = mesh.calls(port, &call, 20).await.expect("requests");
    assert!(
        replies.iter().all(|r| r.who() == "v1"),
        "{:?}",
        count(&replies)
    );
    mesh.wait_for_configz(
        "problems",
        &[
            "conflict",
            "a-newer.yaml",
            "VirtualService default/a-newer",
            "spec.hosts",
            "default/z-older",
        ],
    )
    .await
    .expect("the conflict is reported");
    let metric = |text: &str, line: &str| text.lines().any(|l| l == line);
    let metrics = mesh.discovery.get("/metrics").await.expect("metrics").body;
    assert!(
        metric(
            &metrics,
            "pilot_config_conflicts{type=\"VirtualService\"} 1"
        ),
        "{metrics}"
    );

    mesh.write(
        "z-older.yaml",
        &rule("z-older", "2024-06-01T00:00:00Z", "v9"),
    )
    .expect("write");
    mesh.wait_for_configz(
        "problems",
        &[
            "rejected",
            "z-older.yaml",
            "VirtualService default/z-older",
            "spec.http[0].route[0].destination.subset",
            "\"v9\"",
            "last good version",
        ],
    )
    .await
    .expect("the dangling subset is reported");
    let replies = mesh.calls(port, &call, 20).await.expect("requests");
    assert!(
        replies.iter().all(|r| r.who() == "v1"),
        "the last good version still routes: {:?}",
        count(&replies)
    );
    let metrics = mesh.discovery.get("/metrics").await.expect("metrics").body;
    assert!(
        metric(
            &metrics,
            "pilot_total_rejected_configs{type=\"VirtualService\"} 1"
        ),
        "{metrics}"
    );

    mesh.remove("z-older.yaml").expect("remove");
    mesh.wait_for("the remaining rule", port, &call, |r| r.who() == "v2")
        .await
        .expect("the newer rule takes over");
    let configz = mesh
        .discovery
        .json("/debug/configz")
        .await
        .expect("configz");
    assert_eq!(
        configz["problems"],
        serde_json::json!([]),
        "nothing left to report"
    );
    mesh.ensure_nothing_rejected()
        .await
        .expect("Envoy took all");
}
