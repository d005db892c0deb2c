//! The `ugr` command line: parses the arguments and hands them to the command's module
//! under `commands/` (one module per command). Errors print as one line, `error: <what>:
//! <why>`, naming the file and what was expected, and exit with status 1; no backtrace.

mod commands;
mod sigpipe;

use clap::{Parser, Subcommand};

use self::commands::{bench, catalog, compare, data, eval, export, plot, quickstart, recommend, sid, train};

/// ugr: uncertainty-aware generative recommendation.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole job on a built-in default: train, export, recommend with confidence, evaluate.
    Quickstart(quickstart::QuickstartArgs),
    /// Train a model.
    #[command(subcommand)]
    Train(train::TrainCommand),
    /// Evaluate a run on a split: HR@K and NDCG@K (K = 1, 3, 5, 10, 20) next to the baselines.
    Eval(eval::EvalArgs),
    /// Compare runs with a base run on the rows `ugr eval` ranked for each: HR@K and NDCG@K
    /// (K = 1, 5, 10) of the served and the generative ranking, with paired bootstrap 95%
    /// intervals of the differences.
    Compare(compare::CompareArgs),
    /// Export a run to one artifact: catalog, trie, titles, calibration and ONNX graphs.
    Export(export::ExportArgs),
    /// Recommend for a history with an exported artifact (the embedded engine).
    Recommend(recommend::RecommendArgs),
    /// Change an artifact's catalog without retraining: remove items, add items with their SIDs.
    Catalog(catalog::CatalogArgs),
    /// Dataset tools.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Semantic ID tools.
    #[command(subcommand)]
    Sid(sid::SidCommand),
    /// Benchmarks that print a table.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Charts (SVG).
    #[command(subcommand)]
    Plot(plot::PlotCommand),
}

fn main() -> std::process::ExitCode {
    sigpipe::restore_default();
    ugr_train::configure_runtime();
    match dispatch(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The context chain on one line (a cause already quoted by its context, as in
            // "path: io error", is not repeated); anyhow's Debug form would add a backtrace
            // whenever RUST_BACKTRACE is set, which a command line never wants.
            let mut line = String::new();
            for cause in e.chain() {
                let text = cause.to_string();
                if !line.contains(&text) {
                    if !line.is_empty() {
                        line.push_str(": ");
                    }
                    line.push_str(&text);
                }
            }
            eprintln!("error: {}", line.replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command.
fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Quickstart(a) => quickstart::run(&a, &|line| {
            let cli = Cli::try_parse_from(std::iter::once("ugr".to_owned()).chain(line))?;
            dispatch(cli.command)
        }),
        Command::Train(c) => train::run(c),
        Command::Eval(a) => eval::run(&a),
        Command::Compare(a) => compare::run(&a),
        Command::Export(a) => export::run(&a),
        Command::Recommend(a) => recommend::run(&a),
        Command::Catalog(a) => catalog::run(&a),
        Command::Data(c) => data::run(c),
        Command::Sid(c) => sid::run(c),
        Command::Bench(c) => bench::run(c),
        Command::Plot(c) => plot::run(c),
    }
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over every command and argument (unique ids, valid
    /// defaults): a clash otherwise shows only as a panic when that command is run.
    #[test]
    fn every_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
