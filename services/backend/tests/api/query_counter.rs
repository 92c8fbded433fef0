//! A relay in front of PostgreSQL that records every statement a client executes, read off
//! the wire protocol: a test counts the queries the backend really sent, not what the
//! backend says it sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// SSLRequest and GSSENCRequest: untyped like the startup message that follows them.
const NEGOTIATION_CODES: [u32; 2] = [80_877_103, 80_877_104];

pub struct QueryCounter {
    /// The database URL to give the backend: the same database, through the relay.
    pub url: String,
    executed: Arc<Mutex<Vec<String>>>,
}

impl QueryCounter {
    pub async fn start(database_url: &str) -> Self {
        let mut url = url::Url::parse(database_url).expect("a database URL");
        let upstream = format!(
            "{}:{}",
            url.host_str().expect("a host"),
            url.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        url.set_port(Some(listener.local_addr().unwrap().port()))
            .unwrap();
        // The relay reads plain protocol only.
        url.query_pairs_mut().append_pair("sslmode", "disable");
        let executed = Arc::new(Mutex::new(Vec::new()));
        let record = executed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream)
                    .await
                    .expect("PostgreSQL is up");
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(copy(server_read, client_write));
                tokio::spawn(relay_recording(client_read, server_write, record.clone()));
            }
        });
        Self {
            url: url.to_string(),
            executed,
        }
    }

    /// How many executions of a statement whose text contains `fragment` went through.
    pub fn executions_of(&self, fragment: &str) -> usize {
        let executed = self.executed.lock().unwrap();
        executed.iter().filter(|sql| sql.contains(fragment)).count()
    }
}

async fn copy(mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
}

/// Forwards the client's messages unchanged, recording the statement behind each simple
/// query ('Q') and each bind ('B') of a parsed statement ('P').
async fn relay_recording(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    executed: Arc<Mutex<Vec<String>>>,
) -> Option<()> {
    // Untyped messages first: negotiation requests, then the startup message.
    loop {
        let mut length = [0u8; 4];
        from.read_exact(&mut length).await.ok()?;
        let mut body = vec![0u8; (u32::from_be_bytes(length) as usize).checked_sub(4)?];
        from.read_exact(&mut body).await.ok()?;
        to.write_all(&length).await.ok()?;
        to.write_all(&body).await.ok()?;
        let code = u32::from_be_bytes(body.get(..4)?.try_into().ok()?);
        if !NEGOTIATION_CODES.contains(&code) {
            break;
        }
    }
    let mut statements: HashMap<String, String> = HashMap::new();
    loop {
        let mut header = [0u8; 5];
        from.read_exact(&mut header).await.ok()?;
        let length = u32::from_be_bytes(header[1..].try_into().ok()?) as usize;
        let mut body = vec![0u8; length.checked_sub(4)?];
        from.read_exact(&mut body).await.ok()?;
        let mut fields = body.split(|byte| *byte == 0).map(String::from_utf8_lossy);
        match header[0] {
            b'P' => {
                let name = fields.next()?.into_owned();
                statements.insert(name, fields.next()?.into_owned());
            }
            b'B' => {
                let _portal = fields.next();
                if let Some(statement) = fields.next().and_then(|name| statements.get(&*name)) {
                    executed.lock().unwrap().push(statement.clone());
                }
            }
            b'Q' => executed.lock().unwrap().push(fields.next()?.into_owned()),
            _ => {}
        }
        to.write_all(&header).await.ok()?;
        to.write_all(&body).await.ok()?;
    }
}
