//! The conformance suite every `Store` backend runs (memory, embedded, and etcd in its own
//! gated test), so that the map above them can rely on one behaviour.

use crate::store::{Expect, Store, StoreError, Write};

fn put(key: &str, value: &[u8], expect: Expect) -> Write {
    Write {
        key: key.to_owned(),
        value: Some(value.to_vec()),
        expect,
    }
}

fn delete(key: &str, expect: Expect) -> Write {
    Write {
        key: key.to_owned(),
        value: None,
        expect,
    }
}

/// Runs every check against an empty `store`; panics on the first violation.
pub async fn conformance(store: &dyn Store) {
    assert!(
        store.load().await.unwrap().is_empty(),
        "the suite needs an empty store"
    );
    // A healthy store passes its health check, which writes nothing.
    store.check().await.expect("a healthy store passes check");
    assert!(
        store.load().await.unwrap().is_empty(),
        "check writes nothing"
    );

    // Create-if-absent, then the same again conflicts and changes nothing.
    let r1 = store
        .commit(vec![put("instances/a", b"1", Expect::Absent)])
        .await
        .unwrap();
    let again = store
        .commit(vec![put("instances/a", b"2", Expect::Absent)])
        .await;
    assert!(matches!(again, Err(StoreError::Conflict { ref key }) if key == "instances/a"));

    // Compare-and-swap on the revision.
    let r2 = store
        .commit(vec![put("instances/a", b"3", Expect::Revision(r1))])
        .await
        .unwrap();
    assert!(r2 > r1, "revisions grow");
    let stale = store
        .commit(vec![put("instances/a", b"4", Expect::Revision(r1))])
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "a stale revision conflicts"
    );

    // A batch is atomic: one failed expectation applies nothing.
    let batch = vec![
        put("operations/o1", b"op", Expect::Absent),
        put("instances/a", b"5", Expect::Revision(r1)),
    ];
    assert!(store.commit(batch).await.is_err());
    let entries = store.load().await.unwrap();
    assert_eq!(
        entries.len(),
        1,
        "nothing of a failed batch applies: {entries:?}"
    );
    assert_eq!(entries[0].value, b"3");
    assert_eq!(entries[0].revision, r2);

    // A good batch: every key gets the commit's revision; load is in key order.
    let r3 = store
        .commit(vec![
            put("operations/o1", b"op", Expect::Absent),
            put("bindings/b1", b"b", Expect::Any),
            put("instances/a", b"6", Expect::Revision(r2)),
        ])
        .await
        .unwrap();
    let entries = store.load().await.unwrap();
    let keys: Vec<_> = entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["bindings/b1", "instances/a", "operations/o1"]);
    assert!(entries.iter().all(|e| e.revision == r3));

    // Delete with and without a condition; deleting an absent key unconditionally is fine.
    let stale_delete = store
        .commit(vec![delete("bindings/b1", Expect::Revision(r1))])
        .await;
    assert!(matches!(stale_delete, Err(StoreError::Conflict { .. })));
    store
        .commit(vec![delete("bindings/b1", Expect::Revision(r3))])
        .await
        .unwrap();
    store
        .commit(vec![delete("bindings/none", Expect::Any)])
        .await
        .unwrap();
    let absent_delete = store
        .commit(vec![delete("bindings/none", Expect::Revision(1))])
        .await;
    assert!(matches!(absent_delete, Err(StoreError::Conflict { .. })));

    // Keys may hold any id characters, '/' included (ids are percent-decoded).
    store
        .commit(vec![put("instances/x/y %z", b"7", Expect::Absent)])
        .await
        .unwrap();
    let keys: Vec<_> = store
        .load()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["instances/a", "instances/x/y %z", "operations/o1"]);
}

/// The etcd to test against (`SKYBROKER_TEST_ETCD`, set by the README test command), or
/// `None` when unset: the caller is skipped, loudly, or fails under CI.
pub fn etcd_endpoint() -> Option<String> {
    match std::env::var("SKYBROKER_TEST_ETCD") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("SKYBROKER_TEST_ETCD is not set under CI: the README test command starts etcd")
        }
        _ => {
            eprintln!("SKIPPED: set SKYBROKER_TEST_ETCD=http://host:port to run this test");
            None
        }
    }
}

/// Options for a fresh, empty key space on `endpoint` (a unique prefix per call), with a
/// short lease so lapsed claims show quickly.
pub fn etcd_options(endpoint: &str) -> crate::etcd::EtcdOptions {
    crate::etcd::EtcdOptions {
        endpoints: vec![endpoint.to_owned()],
        prefix: format!("/skybroker-test/{}/", uuid::Uuid::new_v4().simple()),
        user: None,
        ca_pem: None,
        identity_pem: None,
        lease_ttl: std::time::Duration::from_secs(2),
        request_timeout: std::time::Duration::from_secs(5),
    }
}
