//! The outcometer demo: a payments API with idempotency keys, webhook delivery
//! with injected faults, a load generator, and live metrics on
//! http://localhost:9464/metrics. `demo --help` lists the flags.

use std::process::ExitCode;

use outcometer_examples::demo::{Args, Command, Demo, USAGE};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("demo: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let demo = match Demo::start(args.clone(), |name| std::env::var(name).ok()) {
        Ok(demo) => demo,
        Err(error) => {
            eprintln!("demo: {error}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = demo
        .metrics_address()
        .map_or("(no Prometheus endpoint)".to_owned(), |a| {
            format!("http://{a}/metrics")
        });
    println!(
        "outcometer demo: API http://{}/orders · metrics {metrics} · {} req/s for {:.0?} across {} users and {} webhook hosts (seed {}) · Ctrl-C or SIGTERM stops",
        demo.api_address(),
        args.rate,
        args.duration,
        args.users,
        args.endpoints,
        args.seed
    );
    // Ctrl-C and SIGTERM (how containers stop a program) both stop the load and flush.
    let stop = async {
        match outcometer_exporter::shutdown_signal().await {
            Ok(signal) => println!("{signal}: stopping the load, draining deliveries, flushing"),
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let last = demo.run(stop, |snapshot| println!("{}", snapshot.line()));
    println!("\n{last}");
    println!("series exported (bound):");
    for count in demo.series_counts() {
        println!("  {:<48} {:>5} ({})", count.name, count.exported, count.bound);
    }
    match demo.shutdown() {
        Ok(()) => {
            println!("flushed and shut down");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("demo: shutdown: {error}");
            ExitCode::FAILURE
        }
    }
}
