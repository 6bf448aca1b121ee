//! The etcd store against secured etcd servers, and against a compacted history (issue 3).
//!
//! The conformance tests in `src/etcd.rs` run on the shared test etcd, which is plain HTTP
//! without authentication. A production etcd is neither, so this file checks what only a
//! real server shows:
//! - **TLS**: the store trusts exactly the configured CA (a server signed by another CA is
//!   refused, promptly), and with `--client-cert-auth` it presents its client certificate
//!   and is refused without one.
//! - **User and password**: the store authenticates, and everything it does (load, commit,
//!   watch, lease and claim) works with a role granted only the store's prefix; a wrong
//!   password fails at connect with etcd's reason; a user without permission on the prefix
//!   gets an error, not a panic; and an expired auth token is renewed, not fatal.
//! - **Compaction**: a watch that starts from a compacted revision reports
//!   [`WatchEvent::Reset`] and ends, and a reload then catches up.
//!
//! Every test starts its own etcd from the `etcd` binary on `PATH` (Debian's `etcd-server`,
//! which `./test.sh` installs) on free loopback ports with its data in a temporary
//! directory, because each one needs server flags of its own, and because compaction is
//! cluster-wide: it would cut the watches of other tests running on the shared etcd. When
//! there is no `etcd` binary the tests say so loudly and pass, except under CI
//! (`CI=true`), where they fail.
//!
//! Certificates are made at run time with rcgen (a CA, a server certificate for
//! `127.0.0.1`/`localhost`, a client certificate). No rustls crypto provider is installed:
//! tonic's `tls-ring` (which etcd-client's `tls` feature selects) uses the process default
//! provider when there is one and ring's otherwise, so the store must work in a process that
//! installed none, which is what these tests show.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, Identity, Permission, TlsOptions};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use skybroker_storage::{EtcdOptions, EtcdStore, Expect, Store, StoreError, WatchEvent, Write};
use tempfile::TempDir;

/// How long an etcd may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The store's deadline per request in these tests: short, so a refusal that hangs shows.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a watch event may take to arrive.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The etcd administrator's password (user `root`).
const ROOT_PASSWORD: &str = "root-pw-3f9c";
/// The broker's etcd password (user `skybroker`).
const BROKER_PASSWORD: &str = "broker-pw-81d2";

// ===== certificates =====

/// A certificate and its private key, both PEM.
struct CertifiedKey {
    cert: String,
    key: String,
}

/// A test CA and what it signed.
struct Pki {
    /// The CA certificate, PEM: what the store and etcd trust.
    ca: String,
    /// etcd's serving certificate, for `127.0.0.1` and `localhost`.
    server: CertifiedKey,
    /// The store's client certificate (CN `skybroker`).
    client: CertifiedKey,
}

impl Pki {
    /// A fresh CA with a server and a client certificate.
    fn new(name: &str) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::new()).expect("no names");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = ca_params
            .self_signed(&ca_key)
            .expect("CA certificate")
            .pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).expect("valid names");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.use_authority_key_identifier_extension = true;
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("leaf key");
            let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
            CertifiedKey {
                cert: cert.pem(),
                key: key.serialize_pem(),
            }
        };
        let server = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            "etcd",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(Vec::new(), "skybroker", ExtendedKeyUsagePurpose::ClientAuth);
        Pki { ca, server, client }
    }
}

// ===== a private etcd =====

/// How a private etcd serves its clients.
enum Serve<'a> {
    /// Plain HTTP.
    Plain,
    /// TLS with the PKI's server certificate.
    Tls(&'a Pki),
    /// TLS, and every client must present a certificate signed by the PKI's CA.
    MutualTls(&'a Pki),
}

/// An etcd process of one test; killed when dropped, so a failing test leaves nothing running.
struct PrivateEtcd {
    child: Child,
    /// The client URL.
    endpoint: String,
    /// Where etcd's output goes (shown when it does not start).
    log: PathBuf,
    /// The data directory, certificates and log; removed after the child is killed (fields
    /// drop after `Drop::drop`).
    _dir: TempDir,
}

impl Drop for PrivateEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `etcd` binary on `PATH`, or `None` (after a loud SKIPPED line) when there is none;
/// under CI a missing etcd is a failure, since `./test.sh` installs it.
fn etcd_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("no etcd on PATH under CI: ./test.sh installs it (Debian package etcd-server)");
        }
        eprintln!(
            "SKIPPED: no `etcd` binary on PATH; the etcd TLS, auth and compaction tests did not run \
             (./test.sh installs the Debian package etcd-server)"
        );
    }
    found
}

/// Two loopback ports nobody listens on now (both held while picking, so they differ).
fn free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let (first, second) = (bind(), bind());
    let port = |listener: &std::net::TcpListener| listener.local_addr().expect("address").port();
    (port(&first), port(&second))
}

impl PrivateEtcd {
    /// Starts an etcd serving as `serve` says, with `extra` flags, and waits until it answers.
    /// `None` when there is no etcd binary (the test is skipped).
    async fn start(serve: Serve<'_>, extra: &[&str]) -> Option<PrivateEtcd> {
        let binary = etcd_binary()?;
        let dir = tempfile::tempdir().expect("temporary directory");
        let (client_port, peer_port) = free_ports();
        let scheme = match serve {
            Serve::Plain => "http",
            Serve::Tls(_) | Serve::MutualTls(_) => "https",
        };
        let endpoint = format!("{scheme}://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = dir.path().join("etcd.log");

        let mut command = Command::new(binary);
        command
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            .args(extra);
        if let Serve::Tls(pki) | Serve::MutualTls(pki) = &serve {
            let cert = write(dir.path(), "server.pem", &pki.server.cert);
            let key = write(dir.path(), "server-key.pem", &pki.server.key);
            command
                .arg(format!("--cert-file={}", cert.display()))
                .arg(format!("--key-file={}", key.display()));
        }
        if let Serve::MutualTls(pki) = &serve {
            let ca = write(dir.path(), "ca.pem", &pki.ca);
            command
                .arg("--client-cert-auth")
                .arg(format!("--trusted-ca-file={}", ca.display()));
        }
        // etcd also reads its flags from ETCD_* variables; none of the caller's may leak in.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(name);
            }
        }
        let output = std::fs::File::create(&log).expect("etcd log file");
        command
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("etcd log file"))
            .stderr(output);
        let child = command.spawn().expect("start etcd");
        let mut etcd = PrivateEtcd {
            child,
            endpoint,
            log,
            _dir: dir,
        };

        // Ready once it answers a status request over the very transport the tests use.
        let options = match serve {
            Serve::Plain => None,
            Serve::Tls(pki) => Some(tls(&pki.ca, None)),
            Serve::MutualTls(pki) => Some(tls(&pki.ca, Some(&pki.client))),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = etcd.child.try_wait().expect("etcd status") {
                panic!("etcd exited ({status}) at start:\n{}", etcd.log_text());
            }
            if let Ok(mut client) = etcd.admin_client(options.clone(), None).await {
                if client.status().await.is_ok() {
                    return Some(etcd);
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not answer within {START_TIMEOUT:?}:\n{}",
                etcd.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A plain etcd-client connection (the tests' own writes), with TLS options if any and
    /// as `user` if given.
    async fn admin_client(
        &self,
        tls: Option<TlsOptions>,
        user: Option<(&str, &str)>,
    ) -> Result<Client, etcd_client::Error> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(2));
        if let Some(tls) = tls {
            options = options.with_tls(tls);
        }
        if let Some((name, password)) = user {
            // Renewed like the store's, since one test gives tokens a one-second life.
            options = options
                .with_user(name, password)
                .with_auto_token_refresh(true);
        }
        Client::connect([&self.endpoint], Some(options)).await
    }

    /// Store options for this etcd under a fresh prefix, without credentials or TLS.
    fn store_options(&self) -> EtcdOptions {
        EtcdOptions {
            endpoints: vec![self.endpoint.clone()],
            prefix: format!("/skybroker-test/{}/", uuid::Uuid::new_v4().simple()),
            user: None,
            ca_pem: None,
            identity_pem: None,
            lease_ttl: Duration::from_secs(2),
            request_timeout: REQUEST_TIMEOUT,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|err| format!("(no log: {err})"))
    }
}

/// Writes `text` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

/// etcd-client TLS options trusting `ca`, presenting `identity` if given.
fn tls(ca: &str, identity: Option<&CertifiedKey>) -> TlsOptions {
    let mut options = TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(ca));
    if let Some(identity) = identity {
        options = options.identity(Identity::from_pem(&identity.cert, &identity.key));
    }
    options
}

// ===== helpers over the store =====

fn put(key: &str, value: &[u8]) -> Write {
    Write {
        key: key.to_owned(),
        value: Some(value.to_vec()),
        expect: Expect::Absent,
    }
}

/// Commits one key and checks that a load returns it at the commit's revision.
async fn commit_and_load(store: &EtcdStore) {
    let revision = store
        .commit(vec![put("instances/a", b"1")])
        .await
        .expect("commit");
    let entries = store.load().await.expect("load");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0].key.as_str(), entries[0].value.as_slice()),
        ("instances/a", b"1".as_slice())
    );
    assert_eq!(entries[0].revision, revision);
    store.check().await.expect("health check");
}

/// Connects and loads: the error of whichever fails first. The store's client connects
/// lazily when it has no credentials to authenticate with, so a refused transport may
/// show at the first request rather than at connect.
async fn connect_and_load(options: EtcdOptions) -> Result<(), StoreError> {
    let store = EtcdStore::connect(options).await?;
    store.load().await.map(drop)
}

/// Asserts that connecting with `options` and loading fails, within the request timeout
/// (plus slack for the handshake), and returns the error.
async fn assert_refused(options: EtcdOptions, what: &str) -> StoreError {
    let started = Instant::now();
    let bound = REQUEST_TIMEOUT + Duration::from_secs(3);
    let result = tokio::time::timeout(bound, connect_and_load(options))
        .await
        .unwrap_or_else(|_| panic!("{what}: neither refused nor accepted within {bound:?}"));
    let err = result.expect_err(what);
    eprintln!("{what}: refused after {:?}: {err}", started.elapsed());
    err
}

/// Claims `operation` once the store holds a lease (claims fail as unavailable until the
/// lease is granted, which the store does in the background after connecting).
async fn claim_when_leased(store: &EtcdStore, operation: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.claim(operation).await {
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other.expect("claim"),
        }
    }
}

// ===== TLS =====

/// Server TLS: the store trusts its CA and works; another CA is refused promptly.
#[tokio::test]
async fn tls_with_the_right_ca_works_and_another_ca_is_refused() {
    let pki = Pki::new("etcd");
    let Some(etcd) = PrivateEtcd::start(Serve::Tls(&pki), &[]).await else {
        return;
    };

    let store = EtcdStore::connect(EtcdOptions {
        ca_pem: Some(pki.ca.clone().into_bytes()),
        ..etcd.store_options()
    })
    .await
    .expect("connect over TLS");
    commit_and_load(&store).await;

    // A CA that did not sign the server's certificate.
    let other = Pki::new("other");
    let err = assert_refused(
        EtcdOptions {
            ca_pem: Some(other.ca.into_bytes()),
            ..etcd.store_options()
        },
        "a server certificate from an untrusted CA",
    )
    .await;
    // The reason reaches the operator (tonic alone says "transport error").
    assert!(
        err.to_string()
            .contains("invalid peer certificate: UnknownIssuer"),
        "{err:?}"
    );

    // Plain HTTP to a TLS port is no way around it either.
    assert_refused(
        EtcdOptions {
            endpoints: vec![etcd.endpoint.replace("https://", "http://")],
            ..etcd.store_options()
        },
        "plain HTTP to a TLS etcd",
    )
    .await;
}

/// Client-certificate authentication: the store presents its identity and works; without a
/// certificate, or with one from another CA, it is refused.
#[tokio::test]
async fn client_certificate_auth_needs_the_identity() {
    let pki = Pki::new("etcd");
    let Some(etcd) = PrivateEtcd::start(Serve::MutualTls(&pki), &[]).await else {
        return;
    };
    let ca_pem = Some(pki.ca.clone().into_bytes());

    let store = EtcdStore::connect(EtcdOptions {
        ca_pem: ca_pem.clone(),
        identity_pem: Some((
            pki.client.cert.clone().into_bytes(),
            pki.client.key.clone().into_bytes(),
        )),
        ..etcd.store_options()
    })
    .await
    .expect("connect with a client certificate");
    commit_and_load(&store).await;
    // The watch and the lease's keep-alive are streams of their own on the same channel.
    let mut changes = store.watch().await.unwrap().expect("etcd watches");
    store.commit(vec![put("instances/b", b"2")]).await.unwrap();
    let event = tokio::time::timeout(EVENT_TIMEOUT, changes.recv())
        .await
        .expect("a watch event in time");
    assert!(
        matches!(event, Some(WatchEvent::Put(ref entry)) if entry.key == "instances/b"),
        "{event:?}"
    );
    assert!(
        claim_when_leased(&store, "op-1").await,
        "a claim over mutual TLS"
    );

    assert_refused(
        EtcdOptions {
            ca_pem: ca_pem.clone(),
            ..etcd.store_options()
        },
        "no client certificate",
    )
    .await;

    let stranger = Pki::new("stranger").client;
    assert_refused(
        EtcdOptions {
            ca_pem,
            identity_pem: Some((stranger.cert.into_bytes(), stranger.key.into_bytes())),
            ..etcd.store_options()
        },
        "a client certificate from an untrusted CA",
    )
    .await;
}

// ===== user and password =====

/// Creates `root` (the administrator etcd requires before enabling auth), `skybroker`
/// (read-write on `prefix` only) and `outsider` (read-write on another prefix), enables
/// authentication, and returns a client logged in as `root`.
async fn enable_auth(etcd: &PrivateEtcd, prefix: &str) -> Client {
    let mut client = etcd.admin_client(None, None).await.expect("connect");
    client.user_add("root", ROOT_PASSWORD, None).await.unwrap();
    client.role_add("root").await.unwrap();
    client.user_grant_role("root", "root").await.unwrap();
    // etcd roles grant key ranges: [prefix, prefix's range end) is every key of the store.
    for (user, role, range) in [
        ("skybroker", "broker", prefix),
        ("outsider", "elsewhere", "/elsewhere/"),
    ] {
        client.role_add(role).await.unwrap();
        client
            .role_grant_permission(role, Permission::read_write(range).with_prefix())
            .await
            .unwrap();
        client.user_add(user, BROKER_PASSWORD, None).await.unwrap();
        client.user_grant_role(user, role).await.unwrap();
    }
    client.auth_enable().await.unwrap();
    etcd.admin_client(None, Some(("root", ROOT_PASSWORD)))
        .await
        .expect("root logs in")
}

/// A user with read-write on the prefix can do everything the store does; a wrong password
/// and a user without permission get errors saying so.
#[tokio::test]
async fn password_auth_with_a_role_on_the_prefix() {
    let Some(etcd) = PrivateEtcd::start(Serve::Plain, &[]).await else {
        return;
    };
    let options = EtcdOptions {
        user: Some(("skybroker".into(), BROKER_PASSWORD.into())),
        ..etcd.store_options()
    };
    let mut root = enable_auth(&etcd, &options.prefix).await;

    // Without credentials nothing is allowed any more: auth really is on.
    let anonymous = EtcdStore::connect(etcd.store_options()).await.unwrap();
    assert!(
        anonymous.load().await.is_err(),
        "anonymous load after auth enable"
    );

    let store = EtcdStore::connect(options.clone())
        .await
        .expect("connect as skybroker");
    commit_and_load(&store).await;

    // Watch: another writer's change (root's, through a plain client) arrives.
    let mut changes = store.watch().await.unwrap().expect("etcd watches");
    let written = root
        .put(format!("{}instances/b", options.prefix), "2", None)
        .await
        .unwrap();
    let event = tokio::time::timeout(EVENT_TIMEOUT, changes.recv())
        .await
        .expect("a watch event in time");
    match event {
        Some(WatchEvent::Put(entry)) => {
            assert_eq!(
                (entry.key.as_str(), entry.value.as_slice()),
                ("instances/b", b"2".as_slice())
            );
            assert_eq!(entry.revision as i64, written.header().unwrap().revision());
        }
        other => panic!("expected the put of instances/b, got {other:?}"),
    }

    // Lease and claim: granting a lease needs no key permission, the owner key is under the
    // prefix; a second replica of the same user is refused the claim.
    assert!(claim_when_leased(&store, "op-1").await, "the first claim");
    let other = EtcdStore::connect(options.clone()).await.unwrap();
    assert!(
        !claim_when_leased(&other, "op-1").await,
        "claimed by another replica"
    );
    store.release("op-1").await.unwrap();
    // The other replica knew op-1 held: it asks again once that knowledge is old (< 1 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !claim_when_leased(&other, "op-1").await {
        assert!(Instant::now() < deadline, "released, then claimed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A wrong password fails at connect, with etcd's reason.
    let err = EtcdStore::connect(EtcdOptions {
        user: Some(("skybroker".into(), "not-the-password".into())),
        ..options.clone()
    })
    .await
    .expect_err("a wrong password");
    assert!(
        matches!(err, StoreError::Backend(ref message) if message.contains("authentication failed")),
        "{err:?}"
    );

    // A user whose role covers another prefix: connecting works (the password is right),
    // every request on this prefix is refused.
    let outsider = EtcdStore::connect(EtcdOptions {
        user: Some(("outsider".into(), BROKER_PASSWORD.into())),
        ..options.clone()
    })
    .await
    .expect("the outsider's password is right");
    let err = outsider
        .commit(vec![put("instances/c", b"3")])
        .await
        .expect_err("a commit without permission");
    assert!(
        matches!(err, StoreError::Backend(ref message) if message.contains("permission denied")),
        "{err:?}"
    );
    assert!(outsider.load().await.is_err(), "a load without permission");
    let keys = store.load().await.unwrap();
    assert!(
        keys.iter().all(|entry| entry.key != "instances/c"),
        "the refused commit wrote nothing: {keys:?}"
    );
}

/// etcd's auth tokens expire (`--auth-token-ttl`, 300 s by default, and all of them when a
/// member restarts); the store then authenticates again instead of failing every request
/// from then on.
#[tokio::test]
async fn an_expired_auth_token_is_renewed() {
    let Some(etcd) = PrivateEtcd::start(Serve::Plain, &["--auth-token-ttl=1"]).await else {
        return;
    };
    let options = EtcdOptions {
        user: Some(("skybroker".into(), BROKER_PASSWORD.into())),
        ..etcd.store_options()
    };
    let mut root = enable_auth(&etcd, &options.prefix).await;
    let store = EtcdStore::connect(options.clone()).await.expect("connect");
    store.commit(vec![put("instances/a", b"1")]).await.unwrap();
    store.load().await.unwrap();
    // etcd drops a token unused for the TTL, checking once a second.
    let expiry = Duration::from_secs(3);

    // A watch started with an expired token: root's write must arrive (the watch alone,
    // nothing else of the store renews the token meanwhile).
    tokio::time::sleep(expiry).await;
    let mut changes = store.watch().await.unwrap().expect("etcd watches");
    let written = root
        .put(format!("{}instances/b", options.prefix), "2", None)
        .await
        .unwrap();
    let event = tokio::time::timeout(EVENT_TIMEOUT, changes.recv())
        .await
        .expect("a watch started after the token expired sees a change in time");
    assert!(
        matches!(event, Some(WatchEvent::Put(ref entry))
            if entry.revision as i64 == written.header().unwrap().revision()),
        "{event:?}"
    );

    // A commit and a claim, each with an expired token (a load goes the same way).
    tokio::time::sleep(expiry).await;
    store
        .commit(vec![put("instances/c", b"3")])
        .await
        .expect("a commit after the token expired");
    tokio::time::sleep(expiry).await;
    assert!(
        claim_when_leased(&store, "op-1").await,
        "a claim after the token expired"
    );
    assert_eq!(store.load().await.unwrap().len(), 3);
}

// ===== compaction =====

/// A watch from a revision etcd compacted away reports `Reset` and ends; a reload then
/// sees everything, and a watch from the reload continues.
#[tokio::test]
async fn a_watch_from_a_compacted_revision_resets() {
    // A private etcd: compaction is cluster-wide.
    let Some(etcd) = PrivateEtcd::start(Serve::Plain, &[]).await else {
        return;
    };
    let options = etcd.store_options();
    let store = EtcdStore::connect(options.clone()).await.unwrap();
    store.commit(vec![put("instances/a", b"1")]).await.unwrap();
    assert_eq!(store.load().await.unwrap().len(), 1);

    // Others write past the loaded revision, then the history up to now is compacted.
    let mut client = etcd.admin_client(None, None).await.unwrap();
    let mut last = 0;
    for name in ["b", "c", "d"] {
        let response = client
            .put(format!("{}instances/{name}", options.prefix), name, None)
            .await
            .unwrap();
        last = response.header().unwrap().revision();
    }
    client.compact(last, None).await.unwrap();

    let mut changes = store.watch().await.unwrap().expect("etcd watches");
    let event = tokio::time::timeout(EVENT_TIMEOUT, changes.recv())
        .await
        .expect("the watch reports in time");
    assert_eq!(event, Some(WatchEvent::Reset));
    let after = tokio::time::timeout(EVENT_TIMEOUT, changes.recv())
        .await
        .expect("the watch ends in time");
    assert_eq!(after, None, "nothing after a reset");

    // The reload the caller does on Reset: everything, and a watch that continues from it.
    let keys: Vec<String> = store
        .load()
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.key)
        .collect();
    assert_eq!(
        keys,
        ["instances/a", "instances/b", "instances/c", "instances/d"]
    );
    let mut changes = store.watch().await.unwrap().expect("etcd watches");
    client
        .put(format!("{}instances/e", options.prefix), "e", None)
        .await
        .unwrap();
    let event = tokio::time::timeout(EVENT_TIMEOUT, changes.recv())
        .await
        .expect("a watch event in time");
    assert!(
        matches!(event, Some(WatchEvent::Put(ref entry)) if entry.key == "instances/e"),
        "{event:?}"
    );
}
