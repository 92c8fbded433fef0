use std::process::ExitCode;

use shopmicro_common::config::Env;
use shopmicro_common::server::{run_service, shutdown_signal};
use shopmicro_frontend::{Application, Config, SERVICE_NAME};

/// mimalloc rather than glibc's malloc: under load a request allocates on one thread and the
/// log writer frees on another, and glibc's arena locks took a fifth of the CPU (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    run_service(SERVICE_NAME, || async {
        // Before the port is announced, so an early SIGTERM drains rather than kills.
        let shutdown = shutdown_signal();
        let config = Config::from_env(&Env::from_process())?;
        let app = Application::build(config).await?;
        app.run_until(shutdown).await?;
        Ok(())
    })
}
