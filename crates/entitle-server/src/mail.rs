//! Outgoing email: SMTP through lettre when configured, otherwise `.eml` files in the
//! data directory's outbox so a fresh install works without a mail server.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context;
use askama::Template;
use lettre::{
    message::{header::ContentType, Mailbox, MultiPart, SinglePart},
    transport::smtp::authentication::Credentials,
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use tokio::sync::Semaphore;

use crate::config::{Config, SmtpTls};

#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    delivery: Delivery,
    /// Messages sent at once in the background: a committed import queues 1,000
    /// invitations, which must not become 1,000 SMTP connections.
    in_flight: Arc<Semaphore>,
}

const MAX_IN_FLIGHT: usize = 4;

#[derive(Clone)]
enum Delivery {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// One message: a greeting, some paragraphs and usually one button-like link.
pub struct Email {
    pub to: String,
    pub subject: String,
    pub greeting: String,
    pub paragraphs: Vec<String>,
    pub action: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "email/message.html")]
struct HtmlBody<'a> {
    email: &'a Email,
}

#[derive(Template)]
#[template(path = "email/message.txt")]
struct TextBody<'a> {
    email: &'a Email,
}

impl Mailer {
    pub fn from_config(config: &Config) -> anyhow::Result<Mailer> {
        match &config.smtp {
            Some(smtp) => {
                let builder = match smtp.tls {
                    SmtpTls::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                    }
                    SmtpTls::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                            .context("smtp starttls")?
                    }
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                        .context("smtp tls")?,
                };
                let mut builder = builder.port(smtp.port);
                if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
                    builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
                }
                Ok(Mailer {
                    from: smtp.from.parse().context("smtp.from is not a mailbox")?,
                    delivery: Delivery::Smtp(builder.build()),
                    in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
                })
            }
            None => Ok(Mailer {
                from: "entitle <no-reply@localhost>"
                    .parse()
                    .context("default from")?,
                delivery: Delivery::Outbox(config.data_dir.join("outbox")),
                in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            }),
        }
    }

    pub async fn send(&self, email: &Email) -> anyhow::Result<()> {
        let html = HtmlBody { email }
            .render()
            .context("rendering html email")?;
        let text = TextBody { email }
            .render()
            .context("rendering text email")?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(email.to.parse().context("recipient is not a mailbox")?)
            .subject(&email.subject)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )
            .context("building email")?;
        let (delivery, delivered) = match &self.delivery {
            Delivery::Smtp(transport) => (
                "smtp",
                async {
                    transport.send(message).await.context("smtp delivery")?;
                    tracing::info!(subject = %email.subject, "email sent");
                    Ok(())
                }
                .await,
            ),
            Delivery::Outbox(dir) => (
                "outbox",
                async {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .context("creating outbox")?;
                    let path = dir.join(format!("{}.eml", uuid::Uuid::now_v7()));
                    tokio::fs::write(&path, message.formatted())
                        .await
                        .context("writing outbox file")?;
                    tracing::info!(subject = %email.subject, file = %path.display(), "email written to outbox (no SMTP configured)");
                    Ok(())
                }
                .await,
            ),
        };
        let outcome = if delivered.is_ok() { "sent" } else { "failed" };
        crate::metrics::EMAILS
            .with_label_values(&[delivery, outcome])
            .inc();
        delivered
    }

    /// Sends without making the caller wait, so responses take the same time whether or
    /// not a message goes out. Failures are logged.
    pub fn send_in_background(&self, email: Email) {
        let mailer = self.clone();
        tokio::spawn(async move {
            let Ok(_permit) = mailer.in_flight.acquire().await else {
                return;
            };
            if let Err(error) = mailer.send(&email).await {
                tracing::error!(subject = %email.subject, error = format!("{error:#}"), "email delivery failed");
            }
        });
    }
}

/// The newest `count` messages of an outbox, newest first, each as its recipient, subject
/// and plain text: what `entitled outbox` prints, links whole (the files encode long
/// lines as quoted-printable, which breaks links copied out of them).
pub fn newest_in_outbox(dir: &std::path::Path, count: usize) -> anyhow::Result<Vec<String>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(error).with_context(|| format!("reading {}", dir.display())),
    };
    // Named by UUIDv7: the names sort in the order the messages were written.
    files.sort();
    files
        .iter()
        .rev()
        .take(count)
        .map(|path| {
            let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let message = mail_parser::MessageParser::default()
                .parse(&raw)
                .with_context(|| format!("{} is not an email", path.display()))?;
            let to = message
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default();
            Ok(format!(
                "To: {to}\nSubject: {}\nFile: {}\n\n{}\n",
                message.subject().unwrap_or_default(),
                path.display(),
                message.body_text(0).unwrap_or_default().trim_end()
            ))
        })
        .collect()
}
