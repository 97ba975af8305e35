//! The admin API against a real coordinator: tokens, roles, who is recorded
//! as the caller, TLS and mTLS.

use std::time::Duration;

use baton_coordinator::auth::{token, Auth, TlsOptions};
use baton_proto::client::{self as admin_client, ClientTls};
use baton_proto::v1::{self, event::Body};
use tonic::Code;

use crate::support::*;

const T: Duration = Duration::from_secs(30);

/// One task whose role needs an approval; the noop runtime runs it at once after.
const GATED: &str = include_str!("fixtures/gated.yaml");

fn decision(run: &str, by: &str) -> v1::DecisionRequest {
    v1::DecisionRequest {
        run_id: run.into(),
        reason: "looks fine".into(),
        by: by.into(),
        task_id: String::new(),
    }
}

async fn list(a: &Admin) -> Result<usize, tonic::Status> {
    a.clone()
        .list_runs(v1::ListRunsRequest { limit: 5 })
        .await
        .map(|r| r.into_inner().runs.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unknown_tokens_are_unauthenticated() {
    let c = Cluster::start(Rt::Noop).await;
    let none = c.client_with(None).await;
    let e = list(&none).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(
        e.message().contains("BATON_TOKEN"),
        "says how: {}",
        e.message()
    );

    let guess = token::generate();
    let wrong = c.client_with(Some(&guess)).await;
    let e = list(&wrong).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(!e.message().contains(guess.expose()));
    // Nothing was submitted by either.
    let e = c
        .client_with(None)
        .await
        .submit_run(v1::SubmitRunRequest {
            plan_yaml: GATED.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(list(&c.admin).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_but_cannot_submit_or_approve() {
    let c = Cluster::start(Rt::Noop).await;
    let run = c.submit(GATED, &[]).await;
    c.wait_waiting(&run, T).await;
    let viewer = c.client_as("vic", Role::Viewer).await;
    assert_eq!(list(&viewer).await.unwrap(), 1, "a viewer reads runs");

    let e = viewer
        .clone()
        .submit_run(v1::SubmitRunRequest {
            plan_yaml: GATED.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(
        e.message(),
        "SubmitRun needs role operator or higher; vic has role viewer"
    );
    let e = viewer
        .clone()
        .approve(decision(&run, "vic"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("needs role approver"),
        "{}",
        e.message()
    );
    // An operator may submit, not approve.
    let op = c.client_as("olga", Role::Operator).await;
    let e = op
        .clone()
        .approve(decision(&run, "olga"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // The refusals changed nothing: one run, still waiting.
    assert_eq!(list(&c.admin).await.unwrap(), 1);
    let r = c.get(&run).await;
    assert!(r.waiting.contains("approval"), "{r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokens_name_is_recorded_whatever_the_body_says() {
    let c = Cluster::start(Rt::Noop).await;
    let op = c.client_as("olga", Role::Operator).await;
    let run = submit_request(
        &op,
        v1::SubmitRunRequest {
            plan_yaml: GATED.into(),
            plan_file: "gated.yaml".into(),
            submitted_by: "mallory".into(),
            ..Default::default()
        },
    )
    .await;
    c.wait_waiting(&run, T).await;
    let ana = c.client_as("ana", Role::Approver).await;
    ana.clone()
        .approve(decision(&run, "mallory"))
        .await
        .expect("an approver approves");
    let r = c.wait_end(&run, T).await;
    assert_eq!(r.run_status(), v1::RunStatus::Succeeded, "{r:#?}");
    let events = c.events(&run).await;
    let submitted = events
        .iter()
        .find_map(|e| match &e.body {
            Some(Body::RunSubmitted(s)) => Some(s.submitted_by.clone()),
            _ => None,
        })
        .expect("a submission event");
    assert_eq!(submitted, "olga");
    let by: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.body {
            Some(Body::Decision(d)) => Some(d.by.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(by, ["ana"]);
}

struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let leaf = |names: Vec<String>, usage| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names).unwrap();
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        server: leaf(
            vec!["127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        client: leaf(vec!["ci-bot".into()], ExtendedKeyUsagePurpose::ClientAuth),
        ca: ca.pem(),
    }
}

/// A coordinator serving TLS (mTLS with `client_ca`); its https URL and admin token.
async fn tls_baton(
    nats: &baton_test_support::NatsServer,
    pki: &Pki,
    mtls: bool,
) -> (baton::local::LocalBaton, String) {
    let (tok, store) = baton::local::admin_token("tls-admin");
    let opts = baton_coordinator::Options {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        auth: Auth::Tokens(store),
        tls: Some(TlsOptions::from_pem(
            pki.server.0.clone().into(),
            pki.server.1.clone().into(),
            mtls.then(|| pki.ca.clone().into()),
        )),
        ..Default::default()
    };
    let mut local = baton::local::LocalBaton::start_with(&nats.url(), opts, vec![])
        .await
        .expect("Baton starts with TLS");
    local.token = Some(tok);
    let url = format!("https://{}", local.grpc_addr);
    (local, url)
}

/// Connect and list runs; any failure on the way, as text.
async fn try_list(
    url: &str,
    local: &baton::local::LocalBaton,
    tls: &ClientTls,
) -> Result<usize, String> {
    let a = admin_client::connect(url, local.token.as_ref(), tls)
        .await
        .map_err(|e| e.to_string())?;
    list(&a)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_that_trust_its_ca() {
    let nats = baton_test_support::NatsServer::start();
    let pki = pki();
    let (local, url) = tls_baton(&nats, &pki, false).await;
    let trusted = ClientTls {
        ca_pem: Some(pki.ca.clone().into()),
        cert_and_key_pem: None,
    };
    assert_eq!(try_list(&url, &local, &trusted).await, Ok(0));
    // Plaintext against the TLS port gets nowhere.
    let plain = url.replace("https://", "http://");
    assert!(try_list(&plain, &local, &ClientTls::default())
        .await
        .is_err());
    // Neither does a client that does not trust the server's CA.
    let other = pki_other_ca();
    let e = try_list(&url, &local, &other).await.unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}

fn pki_other_ca() -> ClientTls {
    ClientTls {
        ca_pem: Some(pki().ca.into()),
        cert_and_key_pem: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_refuses_a_client_without_a_certificate() {
    let nats = baton_test_support::NatsServer::start();
    let pki = pki();
    let (local, url) = tls_baton(&nats, &pki, true).await;
    let no_cert = ClientTls {
        ca_pem: Some(pki.ca.clone().into()),
        cert_and_key_pem: None,
    };
    assert!(try_list(&url, &local, &no_cert).await.is_err());
    let with_cert = ClientTls {
        ca_pem: Some(pki.ca.clone().into()),
        cert_and_key_pem: Some((pki.client.0.clone().into(), pki.client.1.clone().into())),
    };
    assert_eq!(try_list(&url, &local, &with_cert).await, Ok(0));
    // The certificate does not replace the token.
    let a = admin_client::connect(&url, None, &with_cert).await.unwrap();
    assert_eq!(list(&a).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_without_tokens_refuses_to_start() {
    let nats = baton_test_support::NatsServer::start();
    let r = Box::pin(
        baton_coordinator::Options {
            nats_url: nats.url(),
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        }
        .build(),
    )
    .await;
    let e = r.err().expect("no tokens, no start").to_string();
    assert!(e.contains("--tokens-file"), "{e}");
}

/// A coordinator whose tokens come from a file on disk, as `baton
/// coordinator --tokens-file` has them; the file, and its admin client.
struct FileBaton {
    _nats: baton_test_support::NatsServer,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    local: baton::local::LocalBaton,
    admin: Admin,
}

async fn file_baton(lines: &[String]) -> FileBaton {
    use baton_coordinator::auth::TokenStore;
    let nats = baton_test_support::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    let admin_token = token::generate();
    let mut text = format!("{}\n", token::file_line(&admin_token, "root", Role::Admin));
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    let store = TokenStore::load(&path).expect("the tokens file loads");
    let opts = baton_coordinator::Options {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        auth: Auth::Tokens(std::sync::Arc::new(store)),
        ..Default::default()
    };
    let mut local = baton::local::LocalBaton::start_with(&nats.url(), opts, vec![])
        .await
        .expect("Baton starts");
    local.token = Some(admin_token);
    let admin = local.admin().await.expect("admin connects");
    FileBaton {
        _nats: nats,
        _dir: dir,
        path,
        local,
        admin,
    }
}

impl FileBaton {
    async fn client(&self, t: &baton_proto::secret::Secret) -> Admin {
        client_at(self.local.grpc_addr, t).await
    }

    /// Replace the file's text at once (write aside, then rename), as
    /// editors and config tools do.
    fn rewrite(&self, text: &str, keep_mtime: bool) {
        let old = std::fs::metadata(&self.path).unwrap().modified().unwrap();
        let tmp = self.path.with_extension("new");
        std::fs::write(&tmp, text).unwrap();
        if keep_mtime {
            let f = std::fs::File::options().write(true).open(&tmp).unwrap();
            f.set_modified(old).unwrap();
        }
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }
}

/// How long until `client` is refused as UNAUTHENTICATED; panics past `within`.
async fn refused_within(client: &Admin, within: Duration, what: &str) -> Duration {
    let start = std::time::Instant::now();
    let still = format!("{what}: still accepted after it was revoked");
    eventually(&still, within, async || match list(client).await {
        Err(e) if e.code() == Code::Unauthenticated => Some(start.elapsed()),
        Err(e) => panic!("{what}: expected UNAUTHENTICATED, got {e:?}"),
        Ok(_) => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_removed_from_the_tokens_file_is_refused_within_2s() {
    let (olga, vic, nick) = (token::generate(), token::generate(), token::generate());
    let olga_line = token::file_line(&olga, "olga", Role::Operator);
    let vic_line = token::file_line(&vic, "vic", Role::Viewer);
    let b = file_baton(&[olga_line.clone(), vic_line.clone()]).await;
    let (olga_c, vic_c) = (b.client(&olga).await, b.client(&vic).await);
    assert_eq!(list(&olga_c).await.unwrap(), 0);
    assert_eq!(list(&vic_c).await.unwrap(), 0);

    // Revoke olga: remove her line while the coordinator runs.
    b.rewrite(&b.text().replace(&format!("{olga_line}\n"), ""), false);
    let took = refused_within(&olga_c, Duration::from_secs(2), "olga's revoked token").await;
    eprintln!("revoked token refused after {took:?}");
    assert_eq!(list(&b.admin).await.unwrap(), 0, "the others still work");
    assert_eq!(list(&vic_c).await.unwrap(), 0);

    // A file that does not parse changes nothing: the old tokens stay.
    let good = b.text();
    b.rewrite(&format!("{good}this is not a token line\n"), false);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(list(&vic_c).await.unwrap(), 0, "kept after a bad reload");
    assert_eq!(list(&b.admin).await.unwrap(), 0);

    // Fixed, and vic revoked and nick added in the same edit: the reloader
    // still runs after the failure.
    let nick_line = token::file_line(&nick, "nick", Role::Viewer);
    b.rewrite(
        &format!(
            "{}{nick_line}\n",
            good.replace(&format!("{vic_line}\n"), "")
        ),
        false,
    );
    refused_within(&vic_c, Duration::from_secs(2), "vic's revoked token").await;
    assert_eq!(
        list(&b.client(&nick).await).await.unwrap(),
        0,
        "a new token works at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_tokens_file() {
    use tokio::signal::unix::{signal, SignalKind};
    let vic = token::generate();
    let vic_line = token::file_line(&vic, "vic", Role::Viewer);
    let b = file_baton(std::slice::from_ref(&vic_line)).await;
    let vic_c = b.client(&vic).await;
    assert_eq!(list(&vic_c).await.unwrap(), 0);

    // Comment vic's line out without changing the file's size or mtime, so
    // that only the signal can tell the coordinator.
    let silent = b.text().replace(&vic_line, &format!("#{}", &vic_line[1..]));
    b.rewrite(&silent, true);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        list(&vic_c).await.unwrap(),
        0,
        "the silent edit went unnoticed, as meant"
    );

    // The test's own listener keeps SIGHUP from killing the test process
    // whatever the coordinator does with it.
    let mut own = signal(SignalKind::hangup()).unwrap();
    let st = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    own.recv().await;
    refused_within(&vic_c, Duration::from_secs(2), "vic's token after SIGHUP").await;
    assert_eq!(list(&b.admin).await.unwrap(), 0);
}
