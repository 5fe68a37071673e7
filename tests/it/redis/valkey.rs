//! Valkey, Redis's fork that distributions ship: a representative part of
//! the Redis tests (credentials and TLS, order across three instances and
//! resumes, the lease, snapshots and a log that went back) run again by
//! this test binary with `ASKGATE_REDIS_SERVER=valkey-server`. Skipped,
//! saying so, without `valkey-server`, unless `ASKGATE_REQUIRE_REDIS` is
//! set (`.ci/run` installs it).

use super::*;

/// The tests run again against Valkey: every module but the ones about
/// this instance's own threads (audit) and process kills (failures).
const SUBSET: &[&str] = &["redis::access::", "redis::across::", "redis::log::"];

fn valkey_server() -> Option<PathBuf> {
    required(
        installed("valkey-server", &["/usr/bin/valkey-server"]),
        "valkey-server is not installed (apt-get install valkey-server; \
         on Debian 12 from bookworm-backports)",
    )
}

#[test]
fn the_redis_tests_pass_against_valkey() {
    let Some(program) = valkey_server() else {
        return;
    };
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(test_binary)
        .args(SUBSET)
        .args(["--test-threads", "1"])
        .env("ASKGATE_REDIS_SERVER", &program)
        .stdin(Stdio::null())
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Redis tests failed against {}:\n{stdout}\n{}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let passed = stdout
        .lines()
        .filter(|line| line.ends_with("... ok"))
        .count();
    assert!(passed >= SUBSET.len(), "too few tests ran:\n{stdout}");
}
