//! Upload init (instant, pending, `name(1)`, 429), the object store (single PUT, multipart,
//! refusals: signature, key, token, expiry; faults: 403, 500, reset), completion delay.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::client::{Drive, blob, etag, gcid};

/// Init `content` as `name` under the root: the `resumable.params`.
async fn pending(d: &Drive, name: &str, content: &[u8]) -> (String, Value) {
    let (status, v) = d.init("", name, content).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["file"]["phase"], "PHASE_TYPE_PENDING");
    assert_eq!(v["resumable"]["provider"], "PROVIDER_ALIYUN");
    assert_eq!(v["task"]["phase"], "PHASE_TYPE_PENDING");
    (v["file"]["id"].as_str().unwrap().to_owned(), v["resumable"]["params"].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn instant_uploads_send_no_bytes() {
    let d = Drive::start().await;
    // Known content (anywhere in the drive) with the same size: complete at once.
    let (status, v) = d.init(&d.id("/docs"), "copy.bin", &blob()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["file"]["phase"].as_str(), v["resumable"].is_null()), (Some("PHASE_TYPE_COMPLETE"), true));
    assert_eq!(v["file"]["hash"].as_str(), Some(gcid(&blob()).as_str()));
    assert_eq!(d.sim.pikpak.bytes("/docs/copy.bin").unwrap(), blob());
    assert!(d.names(&d.id("/docs")).await.contains(&"copy.bin".to_owned()));
    // Size 0 too.
    let (status, v) = d.init("", "empty", b"").await;
    assert_eq!((status, v["file"]["phase"].as_str()), (StatusCode::OK, Some("PHASE_TYPE_COMPLETE")));
    assert_eq!(v["file"]["hash"], "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709");
    // Same hash, other size, or a trashed source: not instant.
    let mut longer = blob();
    longer.push(0);
    let (_, v) = d.init("", "longer.bin", &longer).await;
    assert_eq!(v["file"]["phase"], "PHASE_TYPE_PENDING");
    assert_eq!(v["file"]["name"], "longer.bin");
    assert_eq!((d.counter(|c| &c.instant_uploads), d.counter(|c| &c.upload_inits)), (2, 3));
    assert_eq!(d.counter(|c| &c.store_body_bytes), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn single_put_stores_the_bytes_and_completes() {
    let d = Drive::start().await;
    let content = b"fresh content, not in the drive".to_vec();
    let (id, creds) = pending(&d, "new.txt", &content).await;
    assert_eq!(creds["bucket"].as_str().map(str::is_empty), Some(false));
    assert_eq!(creds["endpoint"].as_str(), Some(d.sim.addr.to_string().as_str()));
    // Pending: hidden from listings, shown by its detail.
    assert!(!d.names("").await.contains(&"new.txt".to_owned()));
    let (_, detail) = d.call(Method::GET, &format!("/drive/v1/files/{id}"), None).await;
    assert_eq!(detail["phase"], "PHASE_TYPE_PENDING");
    // The same name again while the first is pending: `new(1).txt`, then `new(2).txt`.
    let (_, v) = d.init("", "new.txt", b"other").await;
    assert_eq!(v["file"]["name"], "new(1).txt");
    let (_, v) = d.init("", "new.txt", b"other 2").await;
    assert_eq!(v["file"]["name"], "new(2).txt");

    let put = d.oss(&creds, Method::PUT, "", content.clone()).await.unwrap();
    assert_eq!((put.status, put.etag.as_str()), (StatusCode::OK, etag(&content).as_str()), "{}", put.text);
    assert!(d.names("").await.contains(&"new.txt".to_owned()));
    let node = d.sim.pikpak.node("/new.txt").unwrap();
    assert_eq!(
        (node.phase.as_str(), node.size, node.hash.as_str()),
        ("PHASE_TYPE_COMPLETE", 31, gcid(&content).as_str())
    );
    assert_eq!(std::fs::read(d.dir.path().join("new.txt")).unwrap(), content);
    assert_eq!(d.download(&id).await, content);
    assert_eq!((d.counter(|c| &c.single_puts), d.counter(|c| &c.store_body_bytes)), (1, 31));
    // The credentials and the signature received are on the list a log must never show.
    let secrets = d.sim.secrets.list();
    for k in ["access_key_id", "access_key_secret", "security_token"] {
        assert!(secrets.contains(&creds[k].as_str().unwrap().to_owned()), "{k}");
    }
    assert!(secrets.iter().any(|s| s.len() == 28 && s.ends_with('=')), "a base64 HMAC-SHA1 signature");
    // Now it is known content: an init of the same bytes is instant.
    let (_, v) = d.init("", "again.txt", &content).await;
    assert_eq!(v["file"]["phase"], "PHASE_TYPE_COMPLETE");
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_bytes_win_over_the_init_hash() {
    let d = Drive::start().await;
    let (_, creds) = pending(&d, "liar.txt", b"what was announced").await;
    let put = d.oss(&creds, Method::PUT, "", b"something else".to_vec()).await.unwrap();
    assert_eq!(put.status, StatusCode::OK);
    let node = d.sim.pikpak.node("/liar.txt").unwrap();
    assert_eq!((node.size, node.hash), (14, gcid(b"something else")));
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_joins_the_listed_parts() {
    let d = Drive::start().await;
    let parts: Vec<Vec<u8>> = (0..3u8).map(|i| vec![b'a' + i; 100_000 + usize::from(i)]).collect();
    let whole = parts.concat();
    let (id, creds) = pending(&d, "multi.bin", &whole).await;
    let init = d.oss(&creds, Method::POST, "uploads", Vec::new()).await.unwrap();
    assert_eq!(init.status, StatusCode::OK, "{}", init.text);
    let upload_id = init.text.split("<UploadId>").nth(1).unwrap().split("</UploadId>").next().unwrap().to_owned();
    for n in [3, 1, 2] {
        let q = format!("partNumber={n}&uploadId={upload_id}");
        let put = d.oss(&creds, Method::PUT, &q, parts[n - 1].clone()).await.unwrap();
        assert_eq!((put.status, put.etag.clone()), (StatusCode::OK, etag(&parts[n - 1])), "{}", put.text);
    }
    let list = d.oss(&creds, Method::GET, &format!("uploadId={upload_id}"), Vec::new()).await.unwrap();
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.text.matches("<Part>").count(), 3);
    assert!(list.text.contains(&etag(&parts[1])));

    let xml = |etags: &[String]| {
        let items: String = etags
            .iter()
            .enumerate()
            .map(|(i, e)| format!("<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>", i + 1))
            .collect();
        format!("<CompleteMultipartUpload>{items}</CompleteMultipartUpload>").into_bytes()
    };
    let q = format!("uploadId={upload_id}");
    let wrong = [etag(&parts[0]), etag(b"nope"), etag(&parts[2])];
    let bad = d.oss(&creds, Method::POST, &q, xml(&wrong)).await.unwrap();
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, "InvalidPart"));
    assert_eq!(d.sim.pikpak.node("/multi.bin").unwrap().phase, "PHASE_TYPE_PENDING");
    let right: Vec<String> = parts.iter().map(|p| etag(p)).collect();
    let done = d.oss(&creds, Method::POST, &q, xml(&right)).await.unwrap();
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(serde_json::from_str::<Value>(&done.text).is_ok(), "the complete answer is JSON: {}", done.text);
    assert_eq!(d.sim.pikpak.bytes("/multi.bin").unwrap(), whole);
    assert_eq!(d.sim.pikpak.node("/multi.bin").unwrap().hash, gcid(&whole));
    assert_eq!(d.download(&id).await, whole);
    assert_eq!((d.counter(|c| &c.part_puts), d.counter(|c| &c.completes)), (3, 2));

    // Abort: the upload id is gone afterwards.
    let (_, creds) = pending(&d, "aborted.bin", b"x").await;
    let init = d.oss(&creds, Method::POST, "uploads", Vec::new()).await.unwrap();
    let upload_id = init.text.split("<UploadId>").nth(1).unwrap().split("</UploadId>").next().unwrap().to_owned();
    let q = format!("uploadId={upload_id}");
    assert_eq!(d.oss(&creds, Method::DELETE, &q, Vec::new()).await.unwrap().status, StatusCode::NO_CONTENT);
    let list = d.oss(&creds, Method::GET, &q, Vec::new()).await.unwrap();
    assert_eq!((list.status, list.code()), (StatusCode::NOT_FOUND, "NoSuchUpload"));
    assert_eq!(d.counter(|c| &c.aborts), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_checks_signature_key_token_and_expiry() {
    let d = Drive::start().await;
    let (_, creds) = pending(&d, "guarded.txt", b"guarded").await;
    type Tweak = fn(&mut reqwest::header::HeaderMap);
    let cases: [(&str, Tweak); 4] = [
        ("SignatureDoesNotMatch", |h| {
            let bad = h["authorization"].to_str().unwrap().replace(':', ":A");
            h.insert("authorization", bad.parse().unwrap());
        }),
        ("SignatureDoesNotMatch", |h| {
            h.remove("authorization");
        }),
        ("InvalidAccessKeyId", |h| {
            let bad = h["authorization"].to_str().unwrap().replace("OSS STS.", "OSS STS.x");
            h.insert("authorization", bad.parse().unwrap());
        }),
        ("InvalidSecurityToken", |h| {
            h.insert("x-oss-security-token", "CAISforged".parse().unwrap());
        }),
    ];
    for (code, tweak) in cases {
        let put = d.oss_with(&creds, Method::PUT, "", b"guarded".to_vec(), tweak).await.unwrap();
        assert_eq!((put.status, put.code()), (StatusCode::FORBIDDEN, code));
    }
    // A signature over other content headers than those sent.
    let put = d
        .oss_with(&creds, Method::PUT, "", b"guarded".to_vec(), |h| {
            h.insert("content-type", "text/plain".parse().unwrap());
        })
        .await
        .unwrap();
    assert_eq!((put.status, put.code()), (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"));
    assert_eq!(d.sim.pikpak.node("/guarded.txt").unwrap().phase, "PHASE_TYPE_PENDING");
    assert_eq!(d.counter(|c| &c.store_403s), 5);

    // Credentials that expire at init.
    d.sim.pikpak.update(|k| k.upload_creds_ttl_secs = 0);
    let (late, creds) = pending(&d, "late.txt", b"late").await;
    let put = d.oss(&creds, Method::PUT, "", b"late".to_vec()).await.unwrap();
    assert_eq!((put.status, put.code()), (StatusCode::FORBIDDEN, "SecurityTokenExpired"));
    // What a client does then: trash the pending file and init again, under the same name.
    d.sim.pikpak.update(|k| k.upload_creds_ttl_secs = 600);
    let task = d.batch("batchTrash", serde_json::json!({"ids": [late]})).await;
    assert_eq!(d.task(&task).await["phase"], "PHASE_TYPE_COMPLETE");
    let (_, v) = d.init("", "late.txt", b"late").await;
    assert_eq!(v["file"]["name"], "late.txt");
    let put = d.oss(&v["resumable"]["params"], Method::PUT, "", b"late".to_vec()).await.unwrap();
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(std::fs::read(d.dir.path().join("late.txt")).unwrap(), b"late");
}

#[tokio::test(flavor = "multi_thread")]
async fn put_faults_and_init_429_then_success() {
    let d = Drive::start().await;
    d.sim.pikpak.update(|k| k.init_429_count = 1);
    let (status, v) = d.init("", "f.bin", b"0123456789").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    let content = vec![7u8; 1 << 20];
    let (_, creds) = pending(&d, "f.bin", &content).await;
    use panmount::sim::pikpak::PutFault;
    for (fault, status, code) in [
        (PutFault::Forbidden, Some(StatusCode::FORBIDDEN), "SignatureDoesNotMatch"),
        (PutFault::ServerError, Some(StatusCode::INTERNAL_SERVER_ERROR), "InternalError"),
        (PutFault::Reset, None, ""),
    ] {
        d.sim.pikpak.update(|k| {
            k.put_fault = fault;
            k.put_fault_count = 1;
        });
        match (d.oss(&creds, Method::PUT, "", content.clone()).await, status) {
            (Ok(put), Some(status)) => assert_eq!((put.status, put.code()), (status, code)),
            (Err(_), None) => {}
            (other, _) => panic!("{fault:?}: unexpected {:?}", other.map(|a| (a.status, a.text))),
        }
        assert_eq!(d.sim.pikpak.node("/f.bin").unwrap().phase, "PHASE_TYPE_PENDING", "{fault:?}");
    }
    let put = d.oss(&creds, Method::PUT, "", content.clone()).await.unwrap();
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(d.sim.pikpak.bytes("/f.bin").unwrap(), content);
}

#[tokio::test(flavor = "multi_thread")]
async fn completion_waits_for_the_delay_and_the_task_follows() {
    let d = Drive::start().await;
    d.sim.pikpak.update(|k| k.completion_delay_ms = 3_600_000);
    let (status, v) = d.init("", "slow.txt", b"slow").await;
    assert_eq!(status, StatusCode::OK);
    let (id, task) = (v["file"]["id"].as_str().unwrap().to_owned(), v["task"]["id"].as_str().unwrap().to_owned());
    let creds = v["resumable"]["params"].clone();
    assert_eq!(d.oss(&creds, Method::PUT, "", b"slow".to_vec()).await.unwrap().status, StatusCode::OK);
    let (_, detail) = d.call(Method::GET, &format!("/drive/v1/files/{id}"), None).await;
    assert_eq!(detail["phase"], "PHASE_TYPE_PENDING");
    assert_eq!(d.task(&task).await["phase"], "PHASE_TYPE_PENDING");
    assert!(!d.names("").await.contains(&"slow.txt".to_owned()));
    d.sim.pikpak.update(|k| k.completion_delay_ms = 0);
    assert_eq!(d.task(&task).await["phase"], "PHASE_TYPE_COMPLETE");
    assert!(d.names("").await.contains(&"slow.txt".to_owned()));
    assert_eq!(d.download(&id).await, b"slow");
}
