//! `hookhouse check`: SQLite's full check of the store, every kept body against its digest,
//! and the request numbers against the sinks' cursors; progress on standard error, what is
//! wrong and what to do on standard output, and exit 1 when the store is damaged. Reads only,
//! so it is safe while `serve` runs.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::spool::SpoolReader;
use crate::spool::integrity::{
    BodyReport, Depth, SeqGap, Structure, WHAT_TO_DO, check_bodies, check_structure,
};

/// Seconds between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The data directory holding `hookhouse.db`.
    #[arg(long, value_name = "DIR", default_value = "./hookhouse-data")]
    pub data_dir: PathBuf,
    /// SQLite's quick check instead of the full one: every page's structure, not every index
    /// against its table (much faster on a large store; misses a damaged index entry).
    #[arg(long)]
    pub quick: bool,
    /// How many problems to print of each kind.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_problems: usize,
}

pub(super) fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let db = args.data_dir.join("hookhouse.db");
    let size = std::fs::metadata(&db).map(|meta| meta.len()).unwrap_or(0);
    let started = Instant::now();
    let depth = if args.quick { Depth::Quick } else { Depth::Full };
    let pragma = if args.quick { "quick_check" } else { "integrity_check" };
    eprintln!(
        "checking {} ({:.1} MB): the file (PRAGMA {pragma})",
        db.display(),
        size as f64 / 1e6
    );
    let mut last_line = Instant::now();
    let structure = check_structure(&db, depth, args.max_problems, move |elapsed| {
        if last_line.elapsed() >= PROGRESS_EVERY {
            last_line = Instant::now();
            let _ =
                writeln!(std::io::stderr(), "  still checking the file: {} s", elapsed.as_secs());
        }
        true
    })?;
    let structure_seconds = started.elapsed().as_secs_f64();
    let mut damaged = print_structure(&structure, structure_seconds, pragma);

    let bodies_started = Instant::now();
    eprintln!("checking every kept body against its body_sha256");
    let mut last_line = Instant::now();
    let bodies = check_bodies(&db, args.max_problems, |seq, last| {
        if last_line.elapsed() >= PROGRESS_EVERY {
            last_line = Instant::now();
            let percent = (seq * 100).checked_div(last).unwrap_or(100);
            eprintln!("  bodies: seq {seq} of {last} ({percent}%)");
        }
    })?;
    let bodies_seconds = bodies_started.elapsed().as_secs_f64();
    damaged |= print_bodies(&bodies, bodies_seconds);
    damaged |= match SpoolReader::open(&db)?.seq_gap() {
        Ok(gap) => print_seqs(gap.as_ref()),
        Err(err) => {
            println!("seqs: could not compare the newest request with the sinks' cursors: {err}");
            true
        }
    };
    println!("checked {} in {:.1} s", db.display(), started.elapsed().as_secs_f64());
    if damaged {
        println!("DAMAGED. What to do: {WHAT_TO_DO}");
        return Ok(ExitCode::FAILURE);
    }
    println!("ok");
    Ok(ExitCode::SUCCESS)
}

/// Prints what SQLite found; returns whether it is damage.
fn print_structure(structure: &Structure, seconds: f64, pragma: &str) -> bool {
    match structure {
        Structure::Ok => {
            println!("file: ok (PRAGMA {pragma}, {seconds:.1} s)");
            false
        }
        Structure::Damaged(problems) => {
            println!("file: DAMAGED (PRAGMA {pragma}, {seconds:.1} s), first problems:");
            for problem in problems {
                println!("  {problem}");
            }
            true
        }
        // `run` never asks it to stop.
        Structure::Stopped => {
            println!("file: the check stopped before it finished");
            true
        }
    }
}

fn print_bodies(bodies: &BodyReport, seconds: f64) -> bool {
    println!(
        "bodies: {} verified, {} skipped (dropped bodies, or hidden behind keyed digests: \
         nothing to compare), {} altered ({seconds:.1} s)",
        bodies.verified, bodies.skipped, bodies.altered_total
    );
    if !bodies.altered.is_empty() {
        let seqs: Vec<String> = bodies.altered.iter().map(i64::to_string).collect();
        let more = bodies.altered_total.saturating_sub(bodies.altered.len() as u64);
        println!(
            "  body no longer matches its body_sha256: seq {}{}",
            seqs.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        );
        println!("  `hookhouse replay` leaves the rows of these requests as they are");
    }
    if let Some(why) = &bodies.unreadable {
        println!("  could not read {why}");
    }
    bodies.is_damaged()
}

fn print_seqs(gap: Option<&SeqGap>) -> bool {
    match gap {
        None => {
            println!("seqs: ok (no sink loaded past the newest request)");
            false
        }
        Some(gap) => {
            println!("seqs: MISSING: {}", gap.describe());
            true
        }
    }
}
