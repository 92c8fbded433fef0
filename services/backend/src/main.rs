use std::process::ExitCode;
use std::time::Duration;

use shopmicro_backend::{Application, Config, SERVICE_NAME, db};
use shopmicro_common::config::{DATABASE_URL_EXPECTED, DatabaseUrl, Env};
use shopmicro_common::server::{run_service, shutdown_signal};

/// How long `migrate` waits for the database to accept the schema owner: on the platform
/// it runs while PostgreSQL starts and makes its roles.
const MIGRATE_PATIENCE: Duration = Duration::from_secs(180);

/// mimalloc rather than glibc's malloc: under load a request allocates on one thread and the
/// log writer frees on another, and glibc's arena locks took a fifth of the CPU (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => run_service(SERVICE_NAME, || async {
            // Before the port is announced, so an early SIGTERM drains rather than kills.
            let shutdown = shutdown_signal();
            let config = Config::from_env(&Env::from_process())?;
            let app = Application::build(config).await?;
            app.run_until(shutdown).await?;
            Ok(())
        }),
        // Run as the schema owner before the backend starts (an init container).
        ["migrate"] => run_service(SERVICE_NAME, || async {
            let url: DatabaseUrl =
                Env::from_process().required("DATABASE_URL", DATABASE_URL_EXPECTED)?;
            db::migrate_when_reachable(&url, MIGRATE_PATIENCE).await?;
            tracing::info!("migrations applied");
            Ok(())
        }),
        other => {
            eprintln!(
                "{SERVICE_NAME}: unknown arguments {other:?}; run with none to serve, or `migrate` to apply the schema's migrations and exit"
            );
            ExitCode::from(2)
        }
    }
}
