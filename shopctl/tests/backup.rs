//! `shopctl db` against real PostgreSQL: backups taken while writes continue restore to
//! exactly the snapshot they describe; tampered artefacts are refused; interrupted backups
//! never look complete; verification and retention.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use shopmicro_common::testing::TestDatabase;
use sqlx::{Connection, PgConnection};
use support::{Moto, Scratch, Shopctl, moto_with_bucket};

/// Runs `shopctl db ARGS`; a JSON report it prints is checked against its schema.
fn db(args: &[&str]) -> Output {
    Shopctl::new(&db_args(args)).output()
}

/// `db ARGS`.
fn db_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    std::iter::once("db").chain(args.iter().copied()).collect()
}

/// Backs `url` up into `dir`, insisting it works; the new backup's id.
fn backed_up(url: &str, dir: &Path) -> String {
    let output = db(&[
        "backup",
        "--database-url",
        url,
        "--to",
        dir.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_owned()
}

/// Runs `shopctl db`, insisting it refuses (exit 2) and says `because` on stderr.
fn refused(args: &[&str], because: &str) {
    let output = db(args);
    assert_eq!(output.status.code(), Some(2), "{args:?}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains(because), "{args:?}: {stderr}");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A password that trust authentication ignores, to prove it never appears anywhere.
fn with_password(url: &str) -> String {
    url.replacen(
        "postgres://postgres@",
        "postgres://postgres:Pa55-Secret@",
        1,
    )
}

async fn seeded() -> TestDatabase {
    let database = TestDatabase::create().await;
    let mut conn = PgConnection::connect(database.url()).await.unwrap();
    for statement in [
        "CREATE TABLE products (id bigserial PRIMARY KEY, name text NOT NULL, price_cents bigint NOT NULL)",
        "CREATE TABLE orders (id bigserial PRIMARY KEY, product_id bigint REFERENCES products (id), note text)",
        "INSERT INTO products (name, price_cents) SELECT 'product ' || g, g * 100 FROM generate_series(1, 2000) g",
        "INSERT INTO orders (product_id, note) SELECT 1 + g % 2000, repeat('x', g % 50) FROM generate_series(1, 20000) g",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    database
}

fn manifest(dir: &Path, id: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(id).join("manifest.json")).unwrap())
        .unwrap()
}

async fn count(url: &str, table: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_while_writes_continue_restores_exactly_its_snapshot() {
    let source = seeded().await;
    let scratch = Scratch::new();
    let dir = scratch.path("backups");

    // Writes keep landing while the backup runs.
    let writer_url = source.url().to_owned();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = stop.clone();
    let writer = tokio::spawn(async move {
        let mut conn = PgConnection::connect(&writer_url).await.unwrap();
        let mut written = 0;
        while !writing.load(std::sync::atomic::Ordering::Relaxed) {
            sqlx::query("INSERT INTO orders (product_id, note) VALUES (1, 'during backup')")
                .execute(&mut conn)
                .await
                .unwrap();
            written += 1;
        }
        written
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let url = with_password(source.url());
    let dir_arg = dir.to_str().unwrap().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        db(&["backup", "--database-url", &url, "--to", &dir_arg])
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();

    assert!(output.status.success(), "{}", text(&output.stderr));
    let id = text(&output.stdout).trim().to_owned();
    let manifest = manifest(&dir, &id);
    let backed_up = manifest["tables"]["orders"]["rows"].as_i64().unwrap();
    assert!(written > 0);
    assert!(
        backed_up >= 20_000 && backed_up < count(source.url(), "orders").await,
        "a snapshot, not the live table"
    );
    assert_eq!(manifest["tables"]["products"]["rows"], 2000);
    for leak in [
        text(&output.stdout),
        text(&output.stderr),
        manifest.to_string(),
    ] {
        assert!(!leak.contains("Pa55-Secret"), "the password leaked: {leak}");
    }

    let target = TestDatabase::create().await;
    let restored = db(&[
        "restore",
        "--database-url",
        target.url(),
        "--from",
        dir.to_str().unwrap(),
        "--backup",
        &id,
        "--yes",
    ]);
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    assert!(
        text(&restored.stderr).contains("match the manifest"),
        "{}",
        text(&restored.stderr)
    );
    assert_eq!(count(target.url(), "orders").await, backed_up);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_backup_is_refused_and_the_target_is_untouched() {
    let source = seeded().await;
    let scratch = Scratch::new();
    let dir = scratch.path("backups");
    let id = backed_up(source.url(), &dir);
    let dump = dir.join(&id).join("dump.pgc");
    let mut bytes = std::fs::read(&dump).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&dump, bytes).unwrap();

    let target = TestDatabase::create().await;
    let mut conn = PgConnection::connect(target.url()).await.unwrap();
    sqlx::query("CREATE TABLE keep_me (id int)")
        .execute(&mut conn)
        .await
        .unwrap();
    refused(
        &[
            "restore",
            "--database-url",
            target.url(),
            "--from",
            dir.to_str().unwrap(),
            "--yes",
        ],
        "checksum does not match",
    );
    let still_there: Option<String> = sqlx::query_scalar("SELECT to_regclass('keep_me')::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(still_there.as_deref(), Some("keep_me"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_backup_leaves_nothing_that_looks_complete() {
    let source = TestDatabase::create().await;
    let mut conn = PgConnection::connect(source.url()).await.unwrap();
    // Enough data that pg_dump is still writing when we pull the plug.
    sqlx::query("CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat(md5((g * 7)::text), 12) AS payload FROM generate_series(1, 400000) g")
        .execute(&mut conn)
        .await
        .unwrap();
    let scratch = Scratch::new();
    let dir = scratch.path("backups");
    let mut child = Shopctl::new(&[
        "db",
        "backup",
        "--database-url",
        source.url(),
        "--to",
        dir.to_str().unwrap(),
    ])
    .command()
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // Wait until the dump is being written, then kill the backup outright.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = std::fs::read_dir(&dir)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.path().extension().is_some_and(|x| x == "partial")
                    && e.path()
                        .join("dump.pgc")
                        .metadata()
                        .is_ok_and(|m| m.len() > 0)
            });
        if started {
            break;
        }
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the backup finished or never started writing"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let listed = db(&["list", "--in", dir.to_str().unwrap(), "--output", "json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&listed.stdout).unwrap(),
        serde_json::json!([]),
        "nothing looks like a backup"
    );
    let target = TestDatabase::create().await;
    refused(
        &[
            "restore",
            "--database-url",
            target.url(),
            "--from",
            dir.to_str().unwrap(),
            "--yes",
        ],
        "no backups",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_backup_cleans_up_and_says_why() {
    let scratch = Scratch::new();
    let dir = scratch.path("backups");
    let missing = "postgres://postgres:Pa55-Secret@127.0.0.1:5432/no_such_database_here";
    let output = db(&[
        "backup",
        "--database-url",
        missing,
        "--to",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no_such_database_here") && !stderr.contains("Pa55-Secret"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no partial directory left behind"
    );

    refused(
        &[
            "backup",
            "--database-url",
            missing,
            "--to",
            "ftp://somewhere/backups",
        ],
        "a directory or to s3://bucket/prefix",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_restores_into_a_scratch_database_and_records_the_result() {
    let source = seeded().await;
    let scratch = Scratch::new();
    let dir = scratch.path("backups");
    let id = backed_up(source.url(), &dir);

    let verified = db(&[
        "verify",
        "--database-url",
        source.url(),
        "--from",
        dir.to_str().unwrap(),
    ]);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    let recorded = &manifest(&dir, &id)["verification"];
    assert_eq!(recorded["ok"], true);
    assert!(recorded["restore_millis"].as_u64().is_some());
    // Other tests verify on the same server at the same time: look for this run's database.
    let scratch_database = recorded["scratch_database"].as_str().unwrap();
    assert!(
        scratch_database.starts_with("shopctl_verify_"),
        "{recorded}"
    );
    let mut conn = PgConnection::connect(source.url()).await.unwrap();
    let scratch_left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(scratch_database)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(scratch_left, 0, "the scratch database is dropped");
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_keeps_the_policy_and_the_newest_verified_backup() {
    let source = seeded().await;
    let scratch = Scratch::new();
    let dir = scratch.path("backups");
    let id = backed_up(source.url(), &dir);
    assert!(
        db(&[
            "verify",
            "--database-url",
            source.url(),
            "--from",
            dir.to_str().unwrap()
        ])
        .status
        .success()
    );
    // Older backups from other days: copies with earlier dates.
    let template = manifest(&dir, &id);
    for (name, date) in [
        ("old-1", "2026-11-20T03:00:00Z"),
        ("old-2", "2026-11-20T01:00:00Z"),
        ("old-3", "2026-10-01T03:00:00Z"),
    ] {
        let copy = dir.join(name);
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(dir.join(&id).join("dump.pgc"), copy.join("dump.pgc")).unwrap();
        let mut m = template.clone();
        m["id"] = name.into();
        m["created_at"] = date.into();
        m["verification"] = Value::Null;
        std::fs::write(copy.join("manifest.json"), m.to_string()).unwrap();
    }
    let pruned = db(&[
        "prune",
        "--in",
        dir.to_str().unwrap(),
        "--keep-daily",
        "2",
        "--keep-weekly",
        "0",
        "--yes",
    ]);
    assert!(pruned.status.success(), "{}", text(&pruned.stderr));
    let mut remaining: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    remaining.sort();
    let mut expected = vec![id.clone(), "old-1".to_owned()];
    expected.sort();
    assert_eq!(
        remaining, expected,
        "the newest of the last two days with backups"
    );
}

// --- S3, against a moto server on loopback ------------------------------------------------

/// `db ARGS` with the AWS credential chain pinned to this test's own moto server.
fn db_s3(moto: &Moto, args: &[&str]) -> Output {
    Shopctl::new(&db_args(args)).aws(moto).output()
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_go_to_s3_encrypted_and_come_back_and_a_tampered_object_is_refused() {
    let moto = moto_with_bucket("shop-backups").await;
    let source = seeded().await;
    let location = "s3://shop-backups/postgres";

    let taken = db_s3(
        &moto,
        &[
            "backup",
            "--database-url",
            source.url(),
            "--to",
            location,
            "--kms-key",
            "alias/shop-backups",
        ],
    );
    assert!(taken.status.success(), "{}", text(&taken.stderr));
    let id = text(&taken.stdout).trim().to_owned();
    // Both objects SSE-KMS with the key asked for, as the emulator's headers say.
    let encryption = |key: String| {
        let s3 = moto.s3();
        async move {
            let head = s3
                .head_object()
                .bucket("shop-backups")
                .key(&key)
                .send()
                .await
                .unwrap();
            (
                head.server_side_encryption()
                    .map(|e| e.as_str().to_string()),
                head.ssekms_key_id().map(str::to_string),
            )
        }
    };
    for file in ["dump.pgc", "manifest.json"] {
        assert_eq!(
            encryption(format!("postgres/{id}/{file}")).await,
            (Some("aws:kms".into()), Some("alias/shop-backups".into())),
            "{file}"
        );
    }
    // Without a key, the bucket's default encryption (its own KMS key) applies: shopctl
    // no longer overrides it with SSE-S3.
    let bucket_key = "arn:aws:kms:eu-west-1:123456789012:key/bucket-default";
    moto.s3()
        .put_bucket_encryption()
        .bucket("shop-backups")
        .server_side_encryption_configuration(
            aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
                .rules(
                    aws_sdk_s3::types::ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                                .kms_master_key_id(bucket_key)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let plain = db_s3(
        &moto,
        &["backup", "--database-url", source.url(), "--to", location],
    );
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    let plain_id = text(&plain.stdout).trim().to_owned();
    assert_eq!(
        encryption(format!("postgres/{plain_id}/dump.pgc"))
            .await
            .1
            .as_deref(),
        Some(bucket_key)
    );
    // The newest backup, restored and then tampered with below.
    let dump_url = format!(
        "{}/shop-backups/postgres/{plain_id}/dump.pgc",
        moto.endpoint
    );
    let refused = db_s3(
        &moto,
        &[
            "backup",
            "--database-url",
            source.url(),
            "--to",
            "/tmp/x",
            "--kms-key",
            "k",
        ],
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("--kms-key is for S3 locations"));

    let listed: Value = serde_json::from_slice(
        &db_s3(&moto, &["list", "--in", location, "--output", "json"]).stdout,
    )
    .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["id"] == id.as_str()),
        "{listed}"
    );

    let target = TestDatabase::create().await;
    let restored = db_s3(
        &moto,
        &[
            "restore",
            "--database-url",
            target.url(),
            "--from",
            location,
            "--yes",
        ],
    );
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    assert_eq!(count(target.url(), "orders").await, 20_000);

    let verified = db_s3(
        &moto,
        &["verify", "--database-url", source.url(), "--from", location],
    );
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    let listed: Value = serde_json::from_slice(
        &db_s3(&moto, &["list", "--in", location, "--output", "json"]).stdout,
    )
    .unwrap();
    assert_eq!(
        listed[0]["verification"]["ok"], true,
        "recorded in the manifest in S3"
    );

    // Someone replaces the dump object.
    reqwest::Client::new()
        .put(&dump_url)
        .body("not the dump")
        .send()
        .await
        .unwrap();
    let other = TestDatabase::create().await;
    let refused = db_s3(
        &moto,
        &[
            "restore",
            "--database-url",
            other.url(),
            "--from",
            location,
            "--yes",
        ],
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("checksum does not match"),
        "{}",
        text(&refused.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_upload_leaves_no_object_that_looks_complete() {
    let moto = moto_with_bucket("shop-backups").await;
    let source = TestDatabase::create().await;
    let mut conn = PgConnection::connect(source.url()).await.unwrap();
    sqlx::query("CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat(md5((g * 7)::text), 12) AS payload FROM generate_series(1, 400000) g")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut child = Shopctl::new(&[
        "db",
        "backup",
        "--database-url",
        source.url(),
        "--to",
        "s3://shop-backups/cut",
    ])
    .aws(&moto)
    .command()
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // Kill it once the multipart upload has started.
    let uploads = format!("{}/shop-backups?uploads", moto.endpoint);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listing = reqwest::get(&uploads).await.unwrap().text().await.unwrap();
        if listing.contains("<UploadId>") {
            break;
        }
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the upload finished or never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let listed = db_s3(
        &moto,
        &["list", "--in", "s3://shop-backups/cut", "--output", "json"],
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&listed.stdout).unwrap(),
        serde_json::json!([]),
        "{}",
        text(&listed.stderr)
    );
    let objects = reqwest::get(format!(
        "{}/shop-backups?list-type=2&prefix=cut/",
        moto.endpoint
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        !objects.contains("<Key>"),
        "no object at all, only an incomplete upload: {objects}"
    );
}

/// The URL of `database` as `role` (trust on loopback: the privileges are what is tested).
fn as_role(database: &TestDatabase, role: &str) -> String {
    let mut url = url::Url::parse(database.url()).unwrap();
    let name = url.path().trim_start_matches('/').to_owned();
    url.set_username(&format!("{name}_{role}")).unwrap();
    url.to_string()
}

/// Runs `templates/postgres/roles.sql` as the superuser, as the postgres container's
/// postStart hook does.
fn set_up_roles(database: &TestDatabase) {
    let url = url::Url::parse(database.url()).unwrap();
    let name = url.path().trim_start_matches('/');
    let script = support::workspace_root().join("templates/postgres/roles.sql");
    let mut psql = Command::new("psql");
    psql.args([
        "-q",
        "-d",
        database.url(),
        "-v",
        &format!("database={name}"),
        "-f",
    ])
    .arg(&script);
    for role in ["OWNER", "BACKEND", "ML", "BACKUP"] {
        psql.env(
            format!("SHOPMICRO_DB_{role}_PASSWORD"),
            format!("{role}-pw"),
        );
    }
    let output = psql.output().expect("psql runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
}

async fn execute(url: &str, statement: &str) -> Result<(), String> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(statement)
        .execute(&mut conn)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Applies the backend's migrations (the first `first` of them, or all) as `url`'s user.
async fn migrate(url: &str, first: Option<usize>) {
    let migrations = support::workspace_root().join("services/backend/migrations");
    let mut migrator = sqlx::migrate::Migrator::new(migrations).await.unwrap();
    if let Some(first) = first {
        migrator.migrations = migrator.migrations[..first].to_vec().into();
    }
    let mut conn = PgConnection::connect(url).await.unwrap();
    migrator.run(&mut conn).await.unwrap();
}

/// The roles `templates/postgres/roles.sql` makes, on a database the superuser made
/// before they existed (as every database made before them was): each does its job and
/// nothing more, and backup → verify → restore works as the roles the platform uses.
#[tokio::test(flavor = "multi_thread")]
async fn the_database_roles_do_their_jobs_and_nothing_more() {
    let database = TestDatabase::create().await;
    migrate(database.url(), Some(1)).await;
    execute(
        database.url(),
        "INSERT INTO categories (slug, name) VALUES ('tea', 'Tea')",
    )
    .await
    .unwrap();
    // Twice: the hook runs at every start.
    set_up_roles(&database);
    set_up_roles(&database);
    let (owner, backend, ml, backup) = (
        as_role(&database, "owner"),
        as_role(&database, "backend"),
        as_role(&database, "ml"),
        as_role(&database, "backup"),
    );

    // The owner migrates (the superuser's tables became its own) and may change the schema.
    migrate(&owner, None).await;
    execute(&owner, "ALTER TABLE products ADD COLUMN scratch int")
        .await
        .unwrap();
    execute(&owner, "ALTER TABLE products DROP COLUMN scratch")
        .await
        .unwrap();

    let refused = |result: Result<(), String>, what: &str| {
        let err = result.expect_err(what);
        assert!(
            err.contains("permission denied") || err.contains("must be owner"),
            "{what}: {err}"
        );
    };
    // The backend reads and writes the shop's tables, and cannot change the schema.
    execute(
        &backend,
        "INSERT INTO products (name, category, description, price_cents, stock) \
         SELECT 'p' || g, 'tea', 'leaves', 100 * g, 10 FROM generate_series(1, 50) g",
    )
    .await
    .unwrap();
    execute(
        &backend,
        "UPDATE products SET stock = stock - 1 WHERE name = 'p1'",
    )
    .await
    .unwrap();
    refused(
        execute(&backend, "CREATE TABLE sneaky (id int)").await,
        "backend creates a table",
    );
    refused(
        execute(&backend, "ALTER TABLE products ADD COLUMN sneaky int").await,
        "backend alters a table",
    );
    refused(
        execute(&backend, "DROP TABLE orders").await,
        "backend drops a table",
    );
    refused(
        execute(&backend, "TRUNCATE orders").await,
        "backend truncates",
    );
    // ml reads what it trains on and nothing else, and writes nothing.
    assert_eq!(count(&ml, "products").await, 50);
    assert_eq!(count(&ml, "order_items").await, 0);
    refused(
        execute(&ml, "UPDATE products SET price_cents = 1").await,
        "ml writes",
    );
    refused(
        execute(&ml, "INSERT INTO categories (slug, name) VALUES ('x', 'x')").await,
        "ml inserts",
    );
    refused(
        execute(&ml, "SELECT * FROM orders").await,
        "ml reads orders",
    );
    // The backup role reads everything and writes nothing.
    refused(
        execute(&backup, "DELETE FROM orders").await,
        "backup deletes",
    );

    // Backup and verify as the backup role, restore as the owner.
    let scratch = Scratch::new();
    let dir = scratch.path("backups");
    let id = backed_up(&backup, &dir);
    let verified = db(&[
        "verify",
        "--database-url",
        &backup,
        "--from",
        dir.to_str().unwrap(),
    ]);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert_eq!(manifest(&dir, &id)["verification"]["ok"], true);
    execute(&backend, "DELETE FROM products WHERE name <> 'p1'")
        .await
        .unwrap();
    let restored = db(&[
        "restore",
        "--database-url",
        &owner,
        "--from",
        dir.to_str().unwrap(),
        "--backup",
        &id,
        "--yes",
    ]);
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    // The restored tables carry their grants: the same roles still can and cannot.
    assert_eq!(count(&ml, "products").await, 50);
    execute(&backend, "DELETE FROM products WHERE name = 'p50'")
        .await
        .unwrap();
    refused(
        execute(&ml, "DELETE FROM products").await,
        "ml writes after a restore",
    );
    refused(
        execute(&backend, "DROP TABLE products").await,
        "backend drops after a restore",
    );
}

/// `db query`, what a runbook's SQL check runs (in a Job on a cluster): one value, or
/// `null` for no row; a broken query fails naming it.
#[tokio::test(flavor = "multi_thread")]
async fn db_query_prints_one_value_or_null() {
    let database = seeded().await;
    let value = |sql: &str| db(&["query", "--database-url", database.url(), "--sql", sql]);
    let count = value("SELECT count(*) FROM products");
    assert!(count.status.success(), "{}", text(&count.stderr));
    assert_eq!(text(&count.stdout), "2000\n");
    let none = value("SELECT id FROM products WHERE id < 0");
    assert_eq!(text(&none.stdout), "null\n");
    let broken = value("SELECT nothing FROM nowhere");
    assert!(!broken.status.success());
    assert!(
        text(&broken.stderr).contains("nowhere"),
        "{}",
        text(&broken.stderr)
    );
}
