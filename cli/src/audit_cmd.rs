//! `baton audit verify|show`: read the AUDIT stream straight from NATS, so an
//! auditor trusts the stream and this binary, not the coordinator.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{anyhow, Context};
use async_nats::jetstream::{self, consumer::pull::OrderedConfig, stream::Stream};
use baton_coordinator::audit::{self, Record};
use baton_coordinator::run::RunState;
use baton_proto::codec::Refused;
use baton_proto::{codec, subjects, v1};
use futures::StreamExt;

use crate::exit::{Exit, FAILED};

/// One message as stored: its stream sequence, subject and bytes.
type Stored = (u64, String, Vec<u8>);

/// Check every chain (or one run's); 0 when all hold, 1 when one does not,
/// 2 when the stream cannot be read.
pub async fn verify(nats_url: &str, run: Option<&str>, chain_only: bool) -> Result<(), Exit> {
    match verify_all(nats_url, run, chain_only).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Exit::silent(FAILED)),
        Err(e) => Err(unreadable(&e)),
    }
}

/// The stream could not be read: exit 2, with the whole chain of causes.
fn unreadable(e: &anyhow::Error) -> Exit {
    Exit::usage(format_args!("{e:#}"))
}

async fn verify_all(nats_url: &str, run: Option<&str>, chain_only: bool) -> anyhow::Result<bool> {
    let js = connect(nats_url).await?;
    let chains = read_chains(&js, run).await?;
    if let (Some(r), true) = (run, chains.is_empty()) {
        println!(
            "FAIL: {r}: no audit records (the run does not exist, or its whole chain was removed)"
        );
        return Ok(false);
    }
    let events = if chain_only {
        None
    } else {
        Some(
            js.get_stream(subjects::EVENTS_STREAM)
                .await
                .context("no EVENTS stream")?,
        )
    };
    let mut all_ok = true;
    for (run, stored) in chains {
        let backing = match &events {
            Some(s) => Some(run_events(s, &run).await?),
            None => None,
        };
        let bytes: Vec<(u64, Vec<u8>)> = stored.into_iter().map(|(q, _, b)| (q, b)).collect();
        let result = audit::verify(&run, &bytes, |r| match &backing {
            Some(evs) => backed(r, evs),
            None => Ok(()),
        });
        match result {
            Ok(v) => println!("ok: {run}, {} records, head {}", v.records, v.head),
            Err(f) => {
                all_ok = false;
                let n = f.n.map_or("?".to_string(), |n| n.to_string());
                println!(
                    "FAIL: {run}: record n={n} (audit stream seq {}) {}: {}",
                    f.stream_seq,
                    f.tamper.as_str(),
                    f.why
                );
            }
        }
    }
    Ok(all_ok)
}

/// Whether the event a record names would give exactly this record.
fn backed(r: &Record, events: &HashMap<u64, Backing>) -> Result<(), String> {
    let ev = events.get(&r.event_seq).ok_or_else(|| {
        format!(
            "event {} of the run is not on the EVENTS stream",
            r.event_seq
        )
    })?;
    let ev = ev.as_ref().map_err(|refused| {
        format!(
            "event {} is one the fold refuses ({refused}): no record may rest on it",
            r.event_seq
        )
    })?;
    let e = audit::from_event(ev, r.event_seq, &r.actor)
        .ok_or_else(|| format!("event {} is not one that is audited", r.event_seq))?;
    let same = e.kind == r.kind
        && e.actor == r.actor
        && e.reason == r.reason
        && e.subject == r.subject
        && e.detail == r.detail
        && e.time_ms == r.time_ms;
    if same {
        Ok(())
    } else {
        Err(format!(
            "event {} does not say what the record says",
            r.event_seq
        ))
    }
}

/// A run's records, one per line.
pub async fn show(nats_url: &str, run: &str) -> Result<(), Exit> {
    let go = async {
        let js = connect(nats_url).await?;
        let chains = read_chains(&js, Some(run)).await?;
        let Some(stored) = chains.get(run) else {
            return Err(anyhow!("run {run} has no audit records"));
        };
        for (_, _, b) in stored {
            match serde_json::from_slice::<Record>(b) {
                Ok(r) => println!(
                    "{:>4}  {}  {:<13} {:<20} {:<16} {}",
                    r.n, r.time_ms, r.kind, r.actor, r.subject, r.reason
                ),
                Err(e) => println!("   ?  unreadable record: {e}"),
            }
        }
        Ok(())
    };
    go.await.map_err(|e| unreadable(&e))
}

async fn connect(url: &str) -> anyhow::Result<jetstream::Context> {
    let client = baton_proto::bus::connect(url, "baton-audit")
        .await
        .map_err(|e| anyhow!(e))?;
    Ok(jetstream::new(client))
}

/// Every chain on the stream (or one run's), each in stream order.
async fn read_chains(
    js: &jetstream::Context,
    run: Option<&str>,
) -> anyhow::Result<BTreeMap<String, Vec<Stored>>> {
    let stream = js
        .get_stream(subjects::AUDIT_STREAM)
        .await
        .context("no audit stream: no coordinator has started on this NATS yet")?;
    let filter = run.map_or(subjects::AUDIT_ALL.to_string(), subjects::audit);
    let mut chains: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for m in read_all(&stream, filter).await? {
        let run = m.1.strip_prefix("baton.audit.").unwrap_or(&m.1).to_string();
        chains.entry(run).or_default().push(m);
    }
    Ok(chains)
}

/// The run's events by stream sequence, each as the fold judges it: bound
/// to its subject, and (results, losses) to its attempt's claim. A record
/// may rest only on an event the fold acted on.
async fn run_events(events: &Stream, run: &str) -> anyhow::Result<HashMap<u64, Backing>> {
    let mut out = HashMap::new();
    // The run as the fold saw it, rebuilt from the stream: which claim
    // each attempt has is the fold's to say (it is pure, so this agrees
    // with the coordinator that wrote the records).
    let mut state: Option<RunState> = None;
    for (seq, subject, b) in read_all(events, subjects::run_events(run)).await? {
        let ev = codec::decode_event(&subject, &b).and_then(|ev| {
            match (&mut state, &ev.body) {
                (None, Some(v1::event::Body::RunSubmitted(sub))) => {
                    state = RunState::submitted(run, sub, ev.time_ms)
                        .ok()
                        .map(|(st, _)| st);
                }
                (Some(st), _) => {
                    st.admit(&ev)?;
                    st.apply(&ev);
                }
                (None, _) => {}
            }
            Ok(ev)
        });
        out.insert(seq, ev);
    }
    Ok(out)
}

type Backing = Result<v1::Event, Refused>;

async fn read_all(stream: &Stream, filter: String) -> anyhow::Result<Vec<Stored>> {
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("cannot read the stream: {e}"))?;
    let mut pending = consumer.cached_info().num_pending;
    let mut msgs = consumer.messages().await.map_err(|e| anyhow!(e))?;
    let mut out = Vec::new();
    while pending > 0 {
        let m = match tokio::time::timeout(Duration::from_secs(10), msgs.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(e))) => return Err(anyhow!("reading the stream: {e}")),
            _ => return Err(anyhow!("the stream stopped delivering")),
        };
        pending -= 1;
        let seq = m.info().map_err(|e| anyhow!(e))?.stream_sequence;
        out.push((seq, m.subject.to_string(), m.payload.to_vec()));
    }
    Ok(out)
}
