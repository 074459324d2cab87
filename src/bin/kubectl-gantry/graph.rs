//! `graph RUN --format dot|svg`: the stage DAG as DOT, or as SVG drawn by
//! Graphviz's `dot` (Debian's `graphviz` package).

use std::io::{ErrorKind, Write};
use std::process::{Command, ExitCode, Stdio};

use chrono::Utc;
use clap::{Args, ValueEnum};

use crate::cluster::Target;
use crate::failure::{one_line, CliError};
use crate::{dot, runs};

#[derive(Args, Debug)]
pub struct GraphArgs {
    /// The run (or `@latest`).
    run: String,
    /// `dot`: Graphviz's source text; `svg`: the picture, drawn by `dot -Tsvg`.
    #[arg(long, value_enum, default_value = "dot")]
    format: GraphFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum GraphFormat {
    Dot,
    Svg,
}

/// The Graphviz program that lays out and draws DOT.
const DOT_PROGRAM: &str = "dot";

pub async fn run(target: &Target, args: GraphArgs) -> Result<ExitCode, CliError> {
    let run = runs::get(target, &args.run).await?;
    let text = dot::render(&run, Utc::now());
    let bytes = match args.format {
        GraphFormat::Dot => text.into_bytes(),
        GraphFormat::Svg => svg(&text)?,
    };
    let mut stdout = std::io::stdout().lock();
    // A reader that went away (`| head`) needs no message.
    let _ = stdout.write_all(&bytes).and_then(|_| stdout.flush());
    Ok(ExitCode::SUCCESS)
}

/// `source` drawn as SVG by `dot -Tsvg`.
fn svg(source: &str) -> Result<Vec<u8>, CliError> {
    let mut child = Command::new(DOT_PROGRAM)
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => CliError::bad_input(
                "--format svg needs Graphviz's `dot`, which is not on the PATH: install Graphviz \
                 (apt-get install graphviz) or use --format dot",
            ),
            _ => CliError::internal(format!("cannot start `{DOT_PROGRAM}`: {e}")),
        })?;
    // `dot` reads all of its input before it writes, so writing first cannot deadlock.
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(source.as_bytes())
            .map_err(|e| CliError::internal(format!("cannot send the graph to `{DOT_PROGRAM}`: {e}")))?;
    }
    let output =
        child.wait_with_output().map_err(|e| CliError::internal(format!("`{DOT_PROGRAM}` did not finish: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(CliError::internal(format!(
            "`{DOT_PROGRAM} -Tsvg` failed ({}): {}",
            output.status,
            one_line(stderr.lines().next().unwrap_or("no message"))
        )));
    }
    Ok(output.stdout)
}
