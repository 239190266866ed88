//! Rate-limit hits taken several at a time: the takes of all instances together never get
//! more than the limit, and a new window starts once the old one has ended.

use ozo_system_tests::*;
use sha2::{Digest, Sha256};

const WINDOW_SECONDS: i64 = 600;

#[tokio::test(flavor = "multi_thread")]
async fn takes_shrink_near_limit() {
    let db = TestDb::create().await;
    let pool = db.pool().await;
    let mut conn = pool.acquire().await.unwrap();
    let key = Sha256::digest(b"192.0.2.1").to_vec();

    // With a limit of 200 and at most 64 per take: 64 and 64, then half of what is left,
    // then one at a time, then none.
    let mut takes = Vec::new();
    loop {
        let (taken, remaining) =
            ozo_store::ratelimits::take(&mut conn, "upload-address", &key, WINDOW_SECONDS, 200, 64).await.unwrap();
        assert!(remaining > 590.0, "{remaining}");
        assert!(remaining <= 600.0, "{remaining}");
        takes.push(taken);
        if taken == 0 {
            break;
        }
    }
    assert_eq!(takes, [64, 64, 36, 18, 9, 4, 2, 1, 1, 1, 0]);
    assert_eq!(takes.iter().sum::<i32>(), 200);

    // The scope is part of the key, and a take of at most one gets one.
    let (taken, _) = ozo_store::ratelimits::take(&mut conn, "status-address", &key, 60, 200, 1).await.unwrap();
    assert_eq!(taken, 1);

    // A limit of zero allows nothing.
    let (taken, _) = ozo_store::ratelimits::take(&mut conn, "upload-invitation", &key, 60, 0, 64).await.unwrap();
    assert_eq!(taken, 0);

    // Once the window has ended, a take starts a new one.
    sqlx::query(
        "UPDATE rate_limit_hits SET window_start = now() - interval '601 seconds' WHERE scope = 'upload-address'",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let (taken, remaining) =
        ozo_store::ratelimits::take(&mut conn, "upload-address", &key, WINDOW_SECONDS, 200, 64).await.unwrap();
    assert_eq!(taken, 64);
    assert!(remaining > 590.0, "{remaining}");
    let hits: i32 = sqlx::query_scalar("SELECT hits FROM rate_limit_hits WHERE scope = 'upload-address'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(hits, 64);

    drop(conn);
    pool.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_takes_reach_limit() {
    let db = TestDb::create().await;
    let pool = db.pool().await;
    let key = Sha256::digest(b"198.51.100.7").to_vec();

    // Eight takers, as eight instances would, each taking until it gets none.
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let mut conn = pool.acquire().await.unwrap();
                let mut got = 0;
                loop {
                    let (taken, _) =
                        ozo_store::ratelimits::take(&mut conn, "upload-address", &key, WINDOW_SECONDS, 1000, 64)
                            .await
                            .unwrap();
                    if taken == 0 {
                        return got;
                    }
                    got += taken;
                }
            })
        })
        .collect();
    let mut total = 0;
    for taker in takers {
        total += taker.await.unwrap();
    }
    assert_eq!(total, 1000);

    pool.close().await;
    db.drop_database().await;
}
