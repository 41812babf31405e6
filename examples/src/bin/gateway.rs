//! The outcometer gateway demo: an OpenAI-compatible LLM gateway on loopback in
//! front of fake backends, a load generator, and live metrics on
//! http://localhost:9464/metrics and /v1/stats. `gateway --help` lists the flags.

use std::process::ExitCode;

use outcometer_examples::gateway::{Args, Command, GatewayDemo, USAGE};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("gateway: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let demo = match GatewayDemo::start(args.clone(), |name| std::env::var(name).ok()) {
        Ok(demo) => demo,
        Err(error) => {
            eprintln!("gateway: {error}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = demo
        .metrics_address()
        .map_or("(no Prometheus endpoint)".to_owned(), |a| {
            format!("http://{a}/metrics and http://{a}/v1/stats")
        });
    println!(
        "outcometer gateway: API http://{}/v1/chat/completions · metrics {metrics} · {} req/s for {:.0?} over {} models on {} backends, {} model names asked for (seed {}){} · Ctrl-C or SIGTERM stops",
        demo.api_address(),
        args.rate,
        args.duration,
        args.models,
        args.backends,
        args.requested_models(),
        args.seed,
        if args.no_metrics { " · recording nothing (--no-metrics)" } else { "" },
    );
    // Ctrl-C and SIGTERM (how containers stop a program) both stop the load and flush.
    let stop = async {
        match outcometer_exporter::shutdown_signal().await {
            Ok(signal) => println!("{signal}: stopping the load, flushing"),
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let last = demo.run(stop, |snapshot| println!("{snapshot}"));
    println!("\n{last}");
    if demo.recorder().is_some() {
        println!("series exported (bound):");
        for count in demo.series_counts() {
            println!("  {:<48} {:>5} ({})", count.name, count.exported, count.bound);
        }
        println!("/v1/stats: {}", demo.telemetry().stats_service().render());
    }
    match demo.shutdown() {
        Ok(()) => {
            println!("flushed and shut down");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("gateway: shutdown: {error}");
            ExitCode::FAILURE
        }
    }
}
