//! A synthetic mesh for load tests: N services × K endpoints spread over
//! namespaces, each with a DestinationRule (two subsets) and a VirtualService
//! (a weighted split between them), written as a config folder or created in
//! a Kubernetes API server.
//!
//! Services and endpoints come in two forms: Istio's (a ServiceEntry selecting
//! WorkloadEntries) or Kubernetes' (a Service, its Pods and their Endpoints).
//! One file per service, so a change to one service is one file rewritten
//! atomically, as a config-management tool would do it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The service port every synthetic service listens on.
pub const SERVICE_PORT: u16 = 80;

#[derive(Debug, Clone, Copy)]
pub struct SynthMesh {
    pub services: usize,
    pub endpoints: usize,
    pub namespaces: usize,
    pub domain: &'static str,
    pub form: Form,
}

/// How services and their endpoints are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Form {
    /// ServiceEntry + WorkloadEntries.
    #[default]
    Istio,
    /// Service + Pods + Endpoints (core/v1, which every API server serves).
    Kubernetes,
}

/// What may differ between two versions of one service's file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revision {
    /// Moves the first endpoint to another port: an endpoint-only change.
    pub endpoint: u32,
    /// Changes the VirtualService's weights: a routing change.
    pub routing: u32,
}

impl SynthMesh {
    pub fn new(services: usize, endpoints: usize, namespaces: usize) -> Self {
        SynthMesh {
            services,
            endpoints,
            namespaces: namespaces.max(1),
            domain: "cluster.local",
            form: Form::Istio,
        }
    }

    /// The same mesh with its services and endpoints in `form`.
    pub fn in_form(self, form: Form) -> Self {
        SynthMesh { form, ..self }
    }

    pub fn name(&self, i: usize) -> String {
        format!("svc-{i:05}")
    }

    pub fn namespace_of(&self, i: usize) -> String {
        namespace(i % self.namespaces)
    }

    pub fn host(&self, i: usize) -> String {
        format!(
            "{}.{}.svc.{}",
            self.name(i),
            self.namespace_of(i),
            self.domain
        )
    }

    /// Envoy cluster names for service `i`: the service and its two subsets.
    pub fn clusters(&self, i: usize) -> [String; 3] {
        let host = self.host(i);
        [
            format!("outbound|{SERVICE_PORT}||{host}"),
            format!("outbound|{SERVICE_PORT}|v1|{host}"),
            format!("outbound|{SERVICE_PORT}|v2|{host}"),
        ]
    }

    /// Clusters a sidecar receives: three per service plus the two catch-alls.
    pub fn expected_clusters(&self) -> usize {
        self.services * 3 + 2
    }

    fn file(&self, dir: &Path, i: usize) -> PathBuf {
        dir.join(format!("{}.yaml", self.name(i)))
    }

    /// Writes every service into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for i in 0..self.services {
            self.write_service(dir, i, Revision::default())?;
        }
        Ok(())
    }

    /// Rewrites service `i` at `rev`, atomically: the folder watcher never
    /// sees half a file.
    pub fn write_service(&self, dir: &Path, i: usize, rev: Revision) -> anyhow::Result<()> {
        let path = self.file(dir, i);
        let tmp = dir.join(format!(".{}.tmp", self.name(i)));
        std::fs::write(&tmp, self.render(i, rev))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot rename {} into place", tmp.display()))
    }

    /// The YAML of service `i`: its service and endpoints in the mesh's form,
    /// then its DestinationRule and VirtualService.
    pub fn render(&self, i: usize, rev: Revision) -> String {
        let mut y = match self.form {
            Form::Istio => self.render_istio(i, rev),
            Form::Kubernetes => self.render_kubernetes(i, rev),
        };
        self.render_routing(i, rev, &mut y);
        y
    }

    /// The Namespaces the mesh's objects live in, for an API server.
    pub fn render_namespaces(&self) -> String {
        (0..self.namespaces)
            .map(|n| {
                format!(
                    "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {}}}\n---\n",
                    namespace(n)
                )
            })
            .collect()
    }

    /// Service, Pods and Endpoints of service `i`.
    fn render_kubernetes(&self, i: usize, rev: Revision) -> String {
        let name = self.name(i);
        let ns = self.namespace_of(i);
        let mut y = String::new();
        // `write!` into a String cannot fail.
        let _ = write!(
            y,
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
             spec:\n  ports: [{{name: http, port: {SERVICE_PORT}, targetPort: 8080}}]\n"
        );
        for e in 0..self.endpoints {
            let _ = write!(
                y,
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}-{e}\n  namespace: {ns}\n\
                 \x20 labels: {{app: {name}, version: {}}}\nspec:\n  containers: [{{name: app, image: app}}]\n",
                version(e)
            );
        }
        y.push_str("---\n");
        y.push_str(&self.render_endpoints(i, rev));
        y
    }

    /// The Endpoints of service `i` (Kubernetes form): the first endpoint in
    /// a subset of its own, so an endpoint revision moves only its port.
    pub fn render_endpoints(&self, i: usize, rev: Revision) -> String {
        let name = self.name(i);
        let ns = self.namespace_of(i);
        let address = |e: usize| {
            format!(
                "{{ip: {}, targetRef: {{kind: Pod, name: {name}-{e}, namespace: {ns}}}}}",
                address(i, e)
            )
        };
        let mut y = format!(
            "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: {name}\n  namespace: {ns}\nsubsets:\n"
        );
        if self.endpoints > 0 {
            let _ = write!(
                y,
                "- addresses: [{}]\n  ports: [{{name: http, port: {}}}]\n",
                address(0),
                8080 + rev.endpoint
            );
        }
        if self.endpoints > 1 {
            let rest: Vec<String> = (1..self.endpoints).map(address).collect();
            let _ = write!(
                y,
                "- addresses: [{}]\n  ports: [{{name: http, port: 8080}}]\n",
                rest.join(", ")
            );
        }
        y
    }

    /// ServiceEntry and WorkloadEntries of service `i`.
    fn render_istio(&self, i: usize, rev: Revision) -> String {
        let name = self.name(i);
        let ns = self.namespace_of(i);
        let host = self.host(i);
        let mut y = String::new();
        // `write!` into a String cannot fail.
        let _ = write!(
            y,
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
             spec:\n  hosts: [{host}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n\
             \x20 ports:\n  - {{number: {SERVICE_PORT}, name: http, protocol: HTTP}}\n\
             \x20 workloadSelector:\n    labels: {{app: {name}}}\n"
        );
        for e in 0..self.endpoints {
            let port = if e == 0 { 8080 + rev.endpoint } else { 8080 };
            let _ = write!(
                y,
                "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}-{e}\n  namespace: {ns}\n\
                 spec:\n  address: {}\n  ports: {{http: {port}}}\n  labels: {{app: {name}, version: {}}}\n",
                address(i, e),
                version(e)
            );
        }
        y
    }

    /// DestinationRule and VirtualService of service `i`.
    fn render_routing(&self, i: usize, rev: Revision, y: &mut String) {
        let name = self.name(i);
        let ns = self.namespace_of(i);
        let v2 = 10 + rev.routing % 80;
        let _ = write!(
            y,
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
             spec:\n  host: {name}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n\
             ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
             spec:\n  hosts: [{name}]\n  exportTo: [\".\"]\n  http:\n  - route:\n\
             \x20   - {{destination: {{host: {name}, subset: v1}}, weight: {}}}\n\
             \x20   - {{destination: {{host: {name}, subset: v2}}, weight: {v2}}}\n",
            100 - v2
        );
    }
}

/// Endpoints alternate between the two subsets.
fn version(endpoint: usize) -> &'static str {
    if endpoint.is_multiple_of(2) {
        "v1"
    } else {
        "v2"
    }
}

pub fn namespace(n: usize) -> String {
    format!("ns-{n}")
}

/// A distinct address per endpoint; never dialled.
fn address(service: usize, endpoint: usize) -> String {
    format!(
        "10.{}.{}.{}",
        (service >> 8) & 0xff,
        service & 0xff,
        (endpoint % 250) + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_change_only_their_part() {
        let m = SynthMesh::new(3, 4, 2);
        let base = m.render(1, Revision::default());
        assert!(base.contains("namespace: ns-1"));
        assert_eq!(base.matches("kind: WorkloadEntry").count(), 4);
        let ep = m.render(
            1,
            Revision {
                endpoint: 7,
                routing: 0,
            },
        );
        assert!(ep.contains("{http: 8087}"));
        assert_eq!(
            ep.replace("{http: 8087}", "{http: 8080}"),
            base,
            "an endpoint revision changes one endpoint port and nothing else"
        );
        let route = m.render(
            1,
            Revision {
                endpoint: 0,
                routing: 5,
            },
        );
        assert!(route.contains("weight: 85") && route.contains("weight: 15"));
        assert_eq!(
            m.clusters(2)[1],
            "outbound|80|v1|svc-00002.ns-0.svc.cluster.local"
        );

        let k = m.in_form(Form::Kubernetes);
        let kube = k.render(1, Revision::default());
        assert_eq!(kube.matches("kind: Pod\n").count(), 4);
        assert!(!kube.contains("WorkloadEntry"));
        assert!(
            kube.ends_with(
                &base[base
                    .find("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule")
                    .expect("rule")..]
            ),
            "both forms share their routing"
        );
        let moved = k.render_endpoints(
            1,
            Revision {
                endpoint: 3,
                routing: 0,
            },
        );
        assert_eq!(moved.matches("port: 8083").count(), 1);
    }
}
