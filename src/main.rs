//! The `hookgate` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use hookgate::cli::{Cli, Command};
use hookgate::{app, config, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(c) => {
            telemetry::init();
            let cfg = config::load(&c.config)
                .with_context(|| format!("invalid configuration {}", c.config.display()))?;
            runtime()?.block_on(async move {
                let ingress = tokio::net::TcpListener::bind(cfg.server.listen)
                    .await
                    .with_context(|| {
                        format!("cannot listen on server.listen {}", cfg.server.listen)
                    })?;
                let admin = tokio::net::TcpListener::bind(cfg.server.admin_listen)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot listen on server.admin_listen {}",
                            cfg.server.admin_listen
                        )
                    })?;
                tracing::info!(
                    listen = %ingress.local_addr()?, admin = %admin.local_addr()?,
                    version = env!("CARGO_PKG_VERSION"), "listening"
                );
                app::run(cfg, ingress, admin, shutdown_signal()).await?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Check(c) => {
            let checked = config::load_all(&c.config).and_then(|cfg| {
                app::compile(&cfg).map_err(|e| config::ConfigErrors(vec![e]))?;
                Ok(cfg)
            });
            match checked {
                Ok(cfg) => {
                    print!("{}", cfg.summary());
                    println!("{}: OK", c.config.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{}: {e}", c.config.display());
                    }
                    eprintln!("{}: {} error(s)", c.config.display(), errors.0.len());
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Sign(args) => {
            print!("{}", hookgate::cli::send::sign(args)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Send(args) => {
            let ok = runtime()?.block_on(hookgate::cli::send::send(args))?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Webhooks(args) => runtime()?.block_on(hookgate::cli::webhooks::run(args)),
    }
}

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes and systemd send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
