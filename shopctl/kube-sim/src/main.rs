//! Runs the simulated Kubernetes API server until stopped, and writes a kubeconfig that
//! points at it: for demos and for trying shopctl without a cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use shopmicro_kube_sim::{Config, Simulator};

/// A simulated Kubernetes API server (not a real cluster) on loopback.
#[derive(Debug, Parser)]
struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where to write a kubeconfig for it (mode 0600).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Cluster name in the kubeconfig; shopctl checks it against the environment's
    /// `cluster.name` (dev: shopmicro-dev).
    #[arg(long, default_value = "shopmicro-dev")]
    cluster_name: String,
    /// How long a healthy pod takes to become ready, in milliseconds.
    #[arg(long, default_value_t = 500)]
    ready_after_ms: u64,
    /// Let requests without credentials in as cluster-admin, so kubectl (which sends
    /// tokens only over TLS) can talk to this plain-HTTP server. Loopback demos only.
    #[arg(long)]
    allow_anonymous: bool,
    /// Answer a Service port through the service proxy with a local server:
    /// `NAMESPACE/SERVICE:PORT=URL` (PORT is the port's name), repeatable. Pods run no
    /// processes here; this is their network.
    #[arg(long, value_name = "NAMESPACE/SERVICE:PORT=URL", value_parser = parse_serve)]
    serve: Vec<(String, String, String, String)>,
}

fn parse_serve(raw: &str) -> Result<(String, String, String, String), String> {
    let invalid = || format!("expected NAMESPACE/SERVICE:PORT=URL, got {raw:?}");
    let (target, url) = raw.split_once('=').ok_or_else(invalid)?;
    let (namespace, service) = target.split_once('/').ok_or_else(invalid)?;
    let (service, port) = service.split_once(':').ok_or_else(invalid)?;
    if [namespace, service, port, url].iter().any(|p| p.is_empty()) {
        return Err(invalid());
    }
    Ok((namespace.into(), service.into(), port.into(), url.into()))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config {
        ready_after: Duration::from_millis(args.ready_after_ms),
        anonymous: args.allow_anonymous,
    };
    let simulator = Simulator::start(args.listen, config)?;
    if args.allow_anonymous {
        simulator.make_anonymous_admin();
    }
    simulator.write_kubeconfig(
        &args.kubeconfig,
        simulator.admin_token(),
        &args.cluster_name,
    )?;
    for (namespace, service, port, url) in &args.serve {
        simulator.serve(namespace, service, port, url);
    }
    println!(
        "simulated Kubernetes API server (not a real cluster) serving on {}",
        simulator.url()
    );
    println!(
        "kubeconfig written to {}; export KUBECONFIG={}",
        args.kubeconfig.display(),
        args.kubeconfig.display()
    );
    println!("press Ctrl-C to stop");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(tokio::signal::ctrl_c())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_serve;

    #[test]
    fn serve_names_a_service_port_and_a_url() {
        assert_eq!(
            parse_serve("shop/backend:http=http://127.0.0.1:8080").unwrap(),
            (
                "shop".into(),
                "backend".into(),
                "http".into(),
                "http://127.0.0.1:8080".into()
            )
        );
        for bad in [
            "shop/backend=http://x",
            "backend:http=http://x",
            "shop/backend:http=",
        ] {
            assert!(parse_serve(bad).is_err(), "{bad}");
        }
    }
}
