//! The outcometer pipeline demo: an event pipeline with a job queue, worker
//! tasks, actions over loopback HTTP through the action decorator, an LRU cache,
//! content deduplication and checkpoints on disk, faults injected throughout, and
//! live metrics on http://localhost:9464/metrics. `pipeline --help` lists the flags.

use std::process::ExitCode;

use outcometer_examples::pipeline::{quiet_injected_panics, Args, Command, Pipeline, USAGE};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("pipeline: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The handler's injected panics are counted and survived; printing each one
    // would bury the summaries.
    quiet_injected_panics();
    let pipeline = match Pipeline::start(args.clone(), |name| std::env::var(name).ok()) {
        Ok(pipeline) => pipeline,
        Err(error) => {
            eprintln!("pipeline: {error}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = pipeline
        .metrics_address()
        .map_or("(no Prometheus endpoint)".to_owned(), |a| {
            format!("http://{a}/metrics")
        });
    println!(
        "outcometer pipeline: metrics {metrics} · {} events/s for {:.0?} over {} queues, {} actions and {} workers · checkpoints in {} · Ctrl-C or SIGTERM stops",
        args.rate,
        args.duration,
        args.queues,
        args.actions,
        pipeline.worker_count(),
        pipeline.checkpoint_dir().display(),
    );
    // Ctrl-C and SIGTERM (how containers stop a program) both stop the producer and flush.
    let stop = async {
        match outcometer_exporter::shutdown_signal().await {
            Ok(signal) => println!("{signal}: stopping the producer, draining the queues, flushing"),
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let last = pipeline.run(stop, |snapshot| println!("{}", snapshot.line()));
    println!("{}\n\n{last}", last.line());
    println!("series exported (bound):");
    for count in pipeline.series_counts() {
        println!("  {:<52} {:>5} ({})", count.name, count.exported, count.bound);
    }
    match pipeline.shutdown() {
        Ok(()) => {
            println!("flushed and shut down");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pipeline: shutdown: {error}");
            ExitCode::FAILURE
        }
    }
}
