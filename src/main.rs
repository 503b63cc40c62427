//! The `hookgate` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use hookgate::cli::{Cli, Command, DeliveriesCommand};
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
            let cfg = hookgate::cli::load_config(&c.config)?;
            runtime()?.block_on(async move {
                let shutdown = shutdown_signal()?;
                let reloads = reload_signal(c.config.clone())?;
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
                app::run_with_reloads(cfg, ingress, admin, shutdown, Some(reloads)).await?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Check(c) => {
            let checked = config::load_all(&c.config).and_then(|cfg| {
                let compiled = app::compile(&cfg)?;
                Ok((cfg, compiled))
            });
            match checked {
                Ok((cfg, compiled)) => {
                    for key in hookgate::outbox::Store::ignored_url_parameters(&cfg.store.url) {
                        eprintln!(
                            "{}: warning: store.url: unknown parameter {key:?} is ignored",
                            c.config.display()
                        );
                    }
                    print!("{}", cfg.summary());
                    if let Some(tls) = &compiled.tls {
                        println!(
                            "{}",
                            hookgate::ingress::tls::describe(tls, app::now_ms() / 1000)
                        );
                    }
                    println!("{}: OK", c.config.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{}: {}", c.config.display(), e.in_file(&c.config));
                    }
                    eprintln!("{}: {} error(s)", c.config.display(), errors.0.len());
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Explain(args) => {
            let cfg = hookgate::cli::load_config(&args.config.config)?;
            let (routes, targets) = app::compile_routing(&cfg)?;
            let req = hookgate::cli::explain::RequestFile::read(&args.request)?;
            let now = args.now.unwrap_or_else(|| app::now_ms() / 1000);
            let x = hookgate::cli::explain::explain(&cfg, &routes, &targets, &req, now);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&x)?);
            } else {
                print!("{}", hookgate::cli::explain::render(&x));
            }
            Ok(if x.status == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Deliveries(cmd) => {
            let out = runtime()?.block_on(async move {
                match cmd {
                    DeliveriesCommand::List {
                        config: c,
                        status,
                        target,
                        limit,
                        json,
                    } => {
                        let cfg = hookgate::cli::load_config(&c.config)?;
                        hookgate::cli::deliveries::list(
                            &cfg,
                            status.as_deref(),
                            target,
                            limit,
                            json,
                        )
                        .await
                    }
                    DeliveriesCommand::Replay {
                        config: c,
                        ids,
                        dead,
                        target,
                        json,
                    } => {
                        let cfg = hookgate::cli::load_config(&c.config)?;
                        hookgate::cli::deliveries::replay(&cfg, ids, dead, target, json).await
                    }
                }
            })?;
            print!("{out}");
            Ok(ExitCode::SUCCESS)
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

/// A reload per SIGHUP (what `systemctl reload` sends; its default action would kill the
/// process). Signals that arrive while a reload is pending make no second one: it reads the
/// file as it is then.
fn reload_signal(path: std::path::PathBuf) -> anyhow::Result<app::Reloads> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let (tx, requests) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the configuration");
            let _ = tx.try_send(());
        }
    });
    Ok(app::Reloads {
        requests,
        load: Box::new(move || config::load_all(&path).map_err(|errors| errors.to_string())),
    })
}

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes and systemd send). The handlers are
/// installed here, before the listeners serve anything, so an early SIGTERM is never missed
/// (the default action would kill the process without draining).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("Ctrl-C received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    })
}
