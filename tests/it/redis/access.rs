//! Redis as people run it: `requirepass`, an ACL user whose password
//! needs percent-encoding in the URL, a wrong password refused clearly
//! (and never shown), and `rediss://` to Redis's own TLS port, checked
//! against a private CA (`--store-ca-file`) and refused without it.

use super::*;
use crate::support::proxy::tls_dir;

/// The ACL user's password: every character a URL would misread.
const BOT_PASSWORD: &str = "p@ss:w/rd%x y";
const BOT_ESCAPED: &str = "p%40ss%3Aw%2Frd%25x%20y";

fn guarded_redis(program: PathBuf) -> Redis {
    let acl_password = format!(">{BOT_PASSWORD}");
    Redis::start_with(
        program,
        &[
            "--requirepass",
            "s3cret-main",
            "--user",
            "bot",
            "on",
            &acl_password,
            "~*",
            "&*",
            "+@all",
        ],
    )
}

/// `redis://127.0.0.1:PORT/0` with `credentials@` put in.
fn with_credentials(redis: &Redis, credentials: &str) -> String {
    redis
        .url()
        .replace("redis://", &format!("redis://{credentials}@"))
}

fn refused_to_start(url: &str) -> String {
    let flags = ["--data-dir", "none", "--store", url];
    let exited = ServerProcess::launch(askgate(), &flags)
        .err()
        .expect("it does not start");
    assert_ne!(exited.code, Some(0));
    exited.stderr
}

#[test]
fn instances_sign_in_with_a_password_and_with_an_acl_user_whose_credentials_are_escaped() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = guarded_redis(program);
    let by_password = with_credentials(&redis, ":s3cret-main");
    let first = ServerProcess::start_with(askgate(), &["--store", &by_password]);
    let id = submit(&first, "guarded", "through the password");
    let by_user = with_credentials(&redis, &format!("bot:{BOT_ESCAPED}"));
    let second = ServerProcess::start_with(askgate(), &["--store", &by_user]);
    assert_eq!(
        pending(&second, "guarded"),
        (1, Some(id.clone())),
        "the ACL user reads the same log"
    );
    assert_eq!(answer(&second, "guarded", &id, "yes"), 200);
    eventually("the answer reaches the first", LONG, &mut || {
        pending(&first, "guarded").0 == 0
    });
}

#[test]
fn a_wrong_password_or_none_is_refused_clearly_and_never_shown() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = guarded_redis(program);
    for credentials in [":not-it-42", "bot:not-it-42", "bot:p%40ss"] {
        let stderr = refused_to_start(&with_credentials(&redis, credentials));
        assert!(
            stderr.contains("redis refused the credentials: WRONGPASS"),
            "{credentials}: {stderr}"
        );
        assert!(
            !stderr.contains("not-it-42") && !stderr.contains("p%40ss"),
            "{stderr}"
        );
    }
    let stderr = refused_to_start(&redis.url());
    assert!(stderr.contains("NOAUTH"), "{stderr}");
    let stderr = refused_to_start(&with_credentials(&redis, ":bad%zz"));
    assert!(
        stderr.contains("a broken %-escape in the credentials"),
        "{stderr}"
    );
    assert!(!stderr.contains("bad%zz"), "{stderr}");
}

#[test]
fn rediss_speaks_tls_checked_against_the_ca_file_and_refuses_an_unknown_ca() {
    let Some(program) = redis_server() else {
        return;
    };
    let file = |name: &str| tls_dir().join(name).display().to_string();
    let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
    let redis = Redis::start_with_tls(
        program,
        &[
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ],
    );
    let tls_port = redis.tls_port.expect("it speaks TLS");
    let by_name = format!("rediss://localhost:{tls_port}/0");
    let first =
        ServerProcess::start_with(askgate(), &["--store", &by_name, "--store-ca-file", &ca]);
    let id = submit(&first, "sealed", "over TLS");
    // The certificate names 127.0.0.1 too; a plain instance on the same
    // Redis sees the same log.
    let by_address = format!("rediss://127.0.0.1:{tls_port}/0");
    let second =
        ServerProcess::start_with(askgate(), &["--store", &by_address, "--store-ca-file", &ca]);
    let plain = ServerProcess::start_with(askgate(), &["--store", &redis.url()]);
    for instance in [&second, &plain] {
        assert_eq!(pending(instance, "sealed"), (1, Some(id.clone())));
    }
    let health = first.get("/healthz").text();
    assert!(health.contains(&by_name), "{health}");
    // The system's CAs do not know the test CA.
    let stderr = refused_to_start(&by_name);
    assert!(stderr.contains("certificate"), "{stderr}");
    // A CA file with no certificate in it is named.
    let stderr = ServerProcess::launch(
        askgate(),
        &[
            "--data-dir",
            "none",
            "--store",
            &by_name,
            "--store-ca-file",
            &key,
        ],
    )
    .err()
    .expect("it does not start")
    .stderr;
    assert!(stderr.contains("no certificate in it"), "{stderr}");
}
