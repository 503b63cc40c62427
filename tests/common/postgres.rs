//! PostgreSQL for tests: the server named by `HOOKGATE_TEST_POSTGRES_URL`, a fresh schema per
//! test (dropped afterwards, whether the test passed or not), and the gateway started on it.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use sqlx::Connection;

use super::{Gateway, base_config};

pub const ENV: &str = "HOOKGATE_TEST_POSTGRES_URL";

/// The server's URL, if the environment names one.
pub fn server_url() -> Option<String> {
    std::env::var(ENV).ok().filter(|v| !v.trim().is_empty())
}

/// A schema of its own on the test server. `url` reaches the server with that schema as the
/// only `search_path`, so a store opened on it sees (and creates) its own tables only; its
/// sessions carry the schema's name as `application_name`, so a test can find (and end) them.
#[derive(Clone, Debug)]
pub struct TestSchema {
    pub name: String,
    pub url: String,
    server: String,
}

impl TestSchema {
    pub async fn create(server: &str) -> TestSchema {
        let name = format!("hg_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(server)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {ENV}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        let sep = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{sep}options=-c%20search_path%3D{name}&application_name={name}");
        TestSchema {
            name,
            url,
            server: server.to_string(),
        }
    }

    pub async fn drop_schema(&self) {
        let mut c = sqlx::PgConnection::connect(&self.server).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            self.name
        )))
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
    }

    /// A connection of the test's own, on the schema.
    pub async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url).await.unwrap()
    }

    /// Ends every session opened with this schema's URL (what a database restart or a failover
    /// does to them); returns how many there were.
    pub async fn terminate_sessions(&self) -> i64 {
        let mut c = sqlx::PgConnection::connect(&self.server).await.unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .fetch_one(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
        n
    }

    /// Rows in one of the store's tables.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = match table {
            "events" => "SELECT COUNT(*) FROM events",
            "deliveries" => "SELECT COUNT(*) FROM deliveries",
            "attempts" => "SELECT COUNT(*) FROM attempts",
            other => panic!("unknown table {other}"),
        };
        let mut c = self.connect().await;
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
        c.close().await.unwrap();
        n
    }
}

pub type TestFn = fn(TestSchema) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs one test on a fresh schema in a runtime of its own; drops the schema afterwards and
/// then re-raises a panic of the test, so libtest-mimic reports it as the failure.
pub fn run(server: Option<String>, test: TestFn) -> Result<(), libtest_mimic::Failed> {
    let server = server.ok_or_else(|| format!("{ENV} is not set"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let schema = TestSchema::create(&server).await;
        let outcome = tokio::spawn(test(schema.clone())).await;
        schema.drop_schema().await;
        match outcome {
            Ok(()) => Ok(()),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(e.to_string().into()),
        }
    })
}

/// [`base_config`] with the store on PostgreSQL.
pub fn pg_config(url: &str, extra: &str) -> String {
    let placeholder = PathBuf::from("hookgate-sqlite-placeholder.db");
    let sqlite = format!("url = \"sqlite://{}\"", placeholder.display());
    let toml = base_config(&placeholder, extra);
    assert!(toml.contains(&sqlite));
    toml.replace(&sqlite, &format!("url = \"{url}\""))
}

impl Gateway {
    /// Start with a complete TOML text whose store is not a SQLite file (`db` stays empty:
    /// the SQLite helpers do not apply).
    pub async fn start_postgres(toml: &str) -> Gateway {
        assert!(toml.contains("url = \"postgres"), "not a PostgreSQL config");
        Gateway::start_with(toml, PathBuf::new()).await
    }
}
