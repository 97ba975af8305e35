use super::*;

fn entry(seq: u64, kind: &'static str) -> Entry {
    Entry {
        event_seq: seq,
        time_ms: 1_700_000_000_000 + seq as i64,
        kind,
        actor: "alice".into(),
        reason: format!("because {seq}"),
        subject: "build".into(),
        detail: BTreeMap::from([("attempt".to_string(), "1".to_string())]),
    }
}

/// A chain of `len` records, stored at stream sequences 1..=len.
fn chain(len: u64) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for n in 0..len {
        let prev = out.last().map_or(GENESIS.to_string(), |r| r.hash.clone());
        out.push(Record::seal(
            "r1",
            n,
            &prev,
            &entry(10 + n * 3, "dispatched"),
        ));
    }
    out
}

fn stored(records: &[Record]) -> Vec<(u64, Vec<u8>)> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| (i as u64 + 1, r.to_bytes()))
        .collect()
}

fn check(records: &[Record]) -> Result<Verified, Finding> {
    verify("r1", &stored(records), |_| Ok(()))
}

#[test]
fn canonical_bytes_leave_out_the_hash_and_sort_detail() {
    let mut r = chain(1).remove(0);
    r.detail.insert("b".into(), "2".into());
    r.detail.insert("a".into(), "1".into());
    let text = String::from_utf8(r.canonical()).unwrap();
    assert!(!text.contains("\"hash\""), "{text}");
    assert!(
        text.starts_with("{\"run\":\"r1\",\"n\":0,\"prev\":\"0000"),
        "{text}"
    );
    assert!(
        text.contains("\"detail\":{\"a\":\"1\",\"attempt\":\"1\",\"b\":\"2\"}"),
        "{text}"
    );
    assert_eq!(r.content_hash().len(), 64);
}

#[test]
fn an_intact_chain_verifies_and_reports_its_head() {
    let c = chain(5);
    let v = check(&c).unwrap();
    assert_eq!(v.records, 5);
    assert_eq!(v.head, c[4].hash);
    assert_eq!(check(&[]).unwrap().head, GENESIS);
}

#[test]
fn a_changed_field_is_named_as_changed() {
    let mut c = chain(5);
    c[2].actor = "mallory".into();
    let f = check(&c).unwrap_err();
    assert_eq!((f.tamper, f.n, f.stream_seq), (Tamper::Changed, Some(2), 3));
}

#[test]
fn garbage_is_changed() {
    let mut s = stored(&chain(3));
    s[1].1 = b"{\"run\":\"r1\"}".to_vec();
    let f = verify("r1", &s, |_| Ok(())).unwrap_err();
    assert_eq!((f.tamper, f.n, f.stream_seq), (Tamper::Changed, None, 2));
}

#[test]
fn a_removed_record_is_named_at_the_gap() {
    let mut c = chain(5);
    c.remove(2);
    let f = check(&c).unwrap_err();
    assert_eq!((f.tamper, f.n), (Tamper::Removed, Some(3)));
    assert!(f.why.contains("record 2 is missing"), "{}", f.why);
    let mut first = chain(3);
    first.remove(0);
    assert_eq!(check(&first).unwrap_err().tamper, Tamper::Removed);
}

#[test]
fn a_removed_and_renumbered_record_breaks_the_link() {
    let mut c = chain(5);
    c.remove(2);
    // Renumber the rest and rehash them, but the link still skips.
    for r in c.iter_mut().skip(2) {
        r.n -= 1;
        r.hash = r.content_hash();
    }
    let f = check(&c).unwrap_err();
    assert_eq!((f.tamper, f.n), (Tamper::Removed, Some(2)));
}

#[test]
fn a_fork_with_a_plausible_prev_is_inserted() {
    let mut c = chain(4);
    // Appended at the end, claiming to follow record 1.
    let forged = Record::seal("r1", 2, &c[1].hash, &entry(12, "approved"));
    c.push(forged);
    let f = check(&c).unwrap_err();
    assert_eq!(
        (f.tamper, f.n, f.stream_seq),
        (Tamper::Inserted, Some(2), 5)
    );
}

#[test]
fn a_record_of_another_run_is_inserted() {
    let mut c = chain(2);
    let other = Record::seal("r2", 2, &c[1].hash, &entry(40, "approved"));
    c.push(other);
    assert_eq!(check(&c).unwrap_err().tamper, Tamper::Inserted);
}

#[test]
fn event_sequences_must_grow() {
    let mut c = chain(2);
    let stale = Record::seal("r1", 2, &c[1].hash, &entry(11, "approved"));
    c.push(stale);
    let f = check(&c).unwrap_err();
    assert_eq!((f.tamper, f.n), (Tamper::Inserted, Some(2)));
}

#[test]
fn a_record_its_event_does_not_back_is_inserted() {
    let c = chain(3);
    let f = verify("r1", &stored(&c), |r| {
        if r.n == 1 {
            Err("no such event".into())
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert_eq!((f.tamper, f.n), (Tamper::Inserted, Some(1)));
}

#[test]
fn unknown_fields_do_not_verify() {
    let c = chain(1);
    let mut v: serde_json::Value = serde_json::from_slice(&c[0].to_bytes()).unwrap();
    v["note"] = "x".into();
    let s = vec![(1, serde_json::to_vec(&v).unwrap())];
    assert_eq!(
        verify("r1", &s, |_| Ok(())).unwrap_err().tamper,
        Tamper::Changed
    );
}
