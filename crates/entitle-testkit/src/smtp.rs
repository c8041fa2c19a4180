//! A real SMTP server on loopback that keeps what it receives, so tests read the
//! messages the server sends exactly as a mail relay would get them.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
    sync::{Mutex, Notify},
};

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub raw: Vec<u8>,
}

impl ReceivedMail {
    /// The first link in the plain-text body that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> Option<String> {
        let start = self.text.find(prefix)?;
        let rest = &self.text[start..];
        let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    }

    /// The `token` query parameter of the first link to `path`.
    pub fn token(&self, path: &str) -> Option<String> {
        let link = self.link("http")?;
        let url = url::Url::parse(&link).ok()?;
        (url.path() == path)
            .then(|| {
                url.query_pairs()
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v.into_owned())
            })
            .flatten()
    }
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    arrived: Arc<Notify>,
}

impl SmtpSink {
    pub async fn start() -> anyhow::Result<SmtpSink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let sink = SmtpSink {
            port,
            mails: Arc::default(),
            arrived: Arc::default(),
        };
        let accepting = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let session = accepting.clone();
                tokio::spawn(async move {
                    if let Err(e) = session.serve(stream).await {
                        eprintln!("smtp sink: {e:#}");
                    }
                });
            }
        });
        Ok(sink)
    }

    async fn serve(&self, stream: tokio::net::TcpStream) -> anyhow::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 entitle-testkit ESMTP\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_ascii_uppercase();
            let reply: &[u8] = if command.starts_with("EHLO") {
                b"250-entitle-testkit\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
            } else if command.starts_with("HELO") || command.starts_with("NOOP") {
                b"250 OK\r\n"
            } else if command.starts_with("MAIL FROM:") {
                from = address(&line);
                to.clear();
                b"250 OK\r\n"
            } else if command.starts_with("RCPT TO:") {
                to.push(address(&line));
                b"250 OK\r\n"
            } else if command.starts_with("RSET") {
                from.clear();
                to.clear();
                b"250 OK\r\n"
            } else if command == "DATA" {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut raw = Vec::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let unstuffed = line
                        .strip_prefix('.')
                        .filter(|_| line.starts_with(".."))
                        .unwrap_or(&line);
                    raw.extend_from_slice(unstuffed.as_bytes());
                }
                self.keep(&from, &to, raw).await;
                b"250 OK queued\r\n"
            } else if command.starts_with("QUIT") {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                b"502 command not implemented\r\n"
            };
            write.write_all(reply).await?;
        }
    }

    async fn keep(&self, from: &str, to: &[String], raw: Vec<u8>) {
        let parsed = mail_parser::MessageParser::default().parse(&raw);
        let (subject, text, html) = match &parsed {
            Some(m) => (
                m.subject().unwrap_or_default().to_owned(),
                m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
                m.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
            ),
            None => Default::default(),
        };
        let mail = ReceivedMail {
            from: from.to_owned(),
            to: to.to_vec(),
            subject,
            text,
            html,
            raw,
        };
        self.mails.lock().await.push(mail);
        self.arrived.notify_waiters();
    }

    /// Every message received so far.
    pub async fn all(&self) -> Vec<ReceivedMail> {
        self.mails.lock().await.clone()
    }

    /// Waits (up to 10 s) for the next message to `to` whose subject contains `subject`,
    /// and removes it from the sink.
    pub async fn expect(&self, to: &str, subject: &str) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.arrived.notified();
            {
                let mut mails = self.mails.lock().await;
                if let Some(i) = mails
                    .iter()
                    .position(|m| m.to.iter().any(|t| t == to) && m.subject.contains(subject))
                {
                    return mails.remove(i);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let seen: Vec<String> = self
                    .all()
                    .await
                    .iter()
                    .map(|m| format!("{:?} → {:?}", m.subject, m.to))
                    .collect();
                panic!("no email to {to} with subject containing {subject:?} within 10 s; received: {seen:?}");
            }
        }
    }
}

fn address(line: &str) -> String {
    let start = line.find('<').map(|i| i + 1).unwrap_or(0);
    let end = line.rfind('>').unwrap_or(line.len());
    line.get(start..end)
        .unwrap_or_default()
        .trim()
        .to_lowercase()
}
