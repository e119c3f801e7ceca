//! `deploy/hookhouse.service` is a unit systemd accepts, that runs the `serve` this build has,
//! and whose sandbox systemd itself rates well. Needs `systemd-analyze`: from
//! `TEST_SYSTEMD_ANALYZE`, else on `PATH` (`.ci/run` installs it); skipped with a line saying
//! so without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UNIT: &str = "deploy/hookhouse.service";
/// How the unit starts the binary where it expects it; the test points it at the one just
/// built.
const INSTALLED_BINARY: &str = "ExecStart=/usr/local/bin/hookhouse ";
const VARIABLE: &str = "TEST_SYSTEMD_ANALYZE";
/// The exposure score `systemd-analyze security` may give at most (0 is the best, 10 the
/// worst; under 2 it rates "OK"). The unit scores 1.2 with systemd 252.
const MOST_EXPOSURE: f64 = 2.0;

fn systemd_analyze() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(VARIABLE).filter(|path| !path.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("systemd-analyze"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        eprintln!(
            "skipped: no systemd-analyze on PATH; install systemd (apt-get install systemd) or \
             set {VARIABLE} to run the systemd unit checks; .ci/run does"
        );
    }
    found
}

/// The unit with `ExecStart` running this build's binary, written as `hookhouse.service` in
/// `dir` (the name `systemd-analyze` reports and reads the unit's type from).
fn unit_for_this_build(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(UNIT).unwrap();
    assert_eq!(text.matches(INSTALLED_BINARY).count(), 1, "one ExecStart names the binary");
    let unit = dir.join("hookhouse.service");
    let built = format!("ExecStart={} ", env!("CARGO_BIN_EXE_hookhouse"));
    std::fs::write(&unit, text.replace(INSTALLED_BINARY, &built)).unwrap();
    unit
}

fn run(analyze: &Path, args: &[&str], unit: &Path) -> Output {
    Command::new(analyze).args(args).arg(unit).output().expect("systemd-analyze runs")
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_unit_verifies_and_its_sandbox_rates_ok() {
    let Some(analyze) = systemd_analyze() else { return };
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());

    let verify = run(&analyze, &["verify"], &unit);
    assert!(verify.status.success(), "systemd-analyze verify refused the unit: {}", text(&verify));
    // Warnings (an unknown or misspelt setting, a bad value) still exit 0: none may appear.
    let stderr = String::from_utf8_lossy(&verify.stderr);
    let about_the_unit: Vec<&str> =
        stderr.lines().filter(|line| line.contains("hookhouse.service")).collect();
    assert!(about_the_unit.is_empty(), "systemd-analyze verify: {}", text(&verify));

    // The check above is only worth something if verify does look at ExecStart.
    let elsewhere = tempfile::tempdir().unwrap();
    let missing = elsewhere.path().join("hookhouse.service");
    let original = std::fs::read_to_string(UNIT).unwrap();
    std::fs::write(
        &missing,
        original.replace(INSTALLED_BINARY, "ExecStart=/nonexistent/hookhouse "),
    )
    .unwrap();
    assert!(!run(&analyze, &["verify"], &missing).status.success(), "a missing binary is refused");

    let security = run(&analyze, &["security", "--offline=yes"], &unit);
    let report = text(&security);
    if !security.status.success() && report.contains("--offline") {
        eprintln!("skipped: this systemd-analyze has no `security --offline` (systemd < 250)");
        return;
    }
    assert!(security.status.success(), "systemd-analyze security: {report}");
    let score = String::from_utf8_lossy(&security.stdout)
        .lines()
        .find_map(|line| {
            let rest = line.split("Overall exposure level for hookhouse.service:").nth(1)?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
        .unwrap_or_else(|| panic!("no overall exposure level in {report}"));
    assert!(score <= MOST_EXPOSURE, "exposure {score} over {MOST_EXPOSURE}: {report}");
}

/// Every flag the unit passes to `serve` exists in this build.
#[test]
fn the_unit_passes_only_flags_serve_has() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let exec = unit.lines().find_map(|line| line.strip_prefix("ExecStart=")).unwrap();
    let help = Command::new(env!("CARGO_BIN_EXE_hookhouse")).args(["serve", "--help"]).output();
    let help = String::from_utf8(help.unwrap().stdout).unwrap();
    let flags: Vec<&str> = exec.split_whitespace().filter(|word| word.starts_with("--")).collect();
    assert!(flags.contains(&"--data-dir") && flags.contains(&"--config"), "{exec}");
    for flag in flags {
        assert!(help.contains(&format!("{flag} ")), "`serve` has no {flag}:\n{help}");
    }
}
