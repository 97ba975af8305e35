//! The admin API against a real coordinator: tokens, roles, who is recorded
//! as the caller, TLS and mTLS.

mod common;

use std::time::Duration;

use baton::admin_client::{self, ClientTls};
use baton_coordinator::auth::{token, Auth, TlsOptions};
use baton_proto::v1::{self, event::Body};
use common::*;
use tonic::Code;

const T: Duration = Duration::from_secs(30);

/// One task whose role needs an approval; the noop runtime runs it at once after.
const GATED: &str = r#"
name: gated
roles:
  ops: { image: "baton/agent:local", risk: approval_required }
phases:
  - id: only
    tasks:
      - id: deploy
        role: ops
        run: ["true"]
"#;

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
    let run = op
        .clone()
        .submit_run(v1::SubmitRunRequest {
            plan_yaml: GATED.into(),
            plan_file: "gated.yaml".into(),
            submitted_by: "mallory".into(),
            ..Default::default()
        })
        .await
        .expect("an operator submits")
        .into_inner()
        .run_id;
    c.wait_waiting(&run, T).await;
    let ana = c.client_as("ana", Role::Approver).await;
    ana.clone()
        .approve(decision(&run, "mallory"))
        .await
        .expect("an approver approves");
    let r = c.wait_end(&run, T).await;
    assert_eq!(r.status, "succeeded", "{r:#?}");
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
    let a = admin_client::connect(url, local.token.as_ref(), tls).await?;
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
