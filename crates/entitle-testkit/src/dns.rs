//! A real authoritative DNS server on loopback (hickory-server), so domain verification
//! is tested over the wire: tests publish and withdraw TXT records while it runs.

use std::{net::SocketAddr, str::FromStr, sync::Arc};

use hickory_server::{
    proto::rr::{
        rdata::{SOA, TXT},
        LowerName, Name, RData, Record, RecordType, RrKey,
    },
    store::in_memory::InMemoryZoneHandler,
    zone_handler::{AxfrPolicy, Catalog, ZoneType},
    Server,
};

/// Every zone below `test.` belongs to this server: tests claim `acme.test` and the like.
pub const ZONE: &str = "test.";

pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
    serial: std::sync::atomic::AtomicU32,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    pub async fn start() -> anyhow::Result<DnsServer> {
        let origin = Name::from_str(ZONE)?;
        let mut zone =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            Name::from_str("ns.test.")?,
            Name::from_str("hostmaster.test.")?,
            1,
            3600,
            600,
            86_400,
            0,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 0, RData::SOA(soa)), 1);
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![zone.clone()]);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let mut server = Server::new(catalog);
        server.register_socket(socket);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        Ok(DnsServer {
            addr,
            zone,
            serial: std::sync::atomic::AtomicU32::new(2),
            task,
        })
    }

    /// Publishes a TXT record (added to any already at `name`).
    pub async fn publish_txt(&self, name: &str, value: &str) {
        let name = Name::from_str(&format!("{}.", name.trim_end_matches('.'))).expect("name");
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let record = Record::from_rdata(name, 0, RData::TXT(TXT::new(vec![value.to_owned()])));
        assert!(
            self.zone.upsert(record, serial).await,
            "TXT record published"
        );
    }

    /// Withdraws every TXT record at `name`.
    pub async fn withdraw_txt(&self, name: &str) {
        let name = Name::from_str(&format!("{}.", name.trim_end_matches('.'))).expect("name");
        let key = RrKey::new(LowerName::new(&name), RecordType::TXT);
        self.zone.records_mut().await.remove(&key);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
