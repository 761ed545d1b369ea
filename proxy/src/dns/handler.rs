//! The request handler hickory-server calls: cluster names from the store, everything else
//! through the forwarder.

use std::sync::{Arc, RwLock};

use hickory_proto::op::{Edns, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use rand::seq::SliceRandom;

use super::answer::{self, Resolution, Zone};
use super::forward::Forwarder;
use super::store::ClusterData;

pub struct DnsHandler {
    pub data: Arc<RwLock<ClusterData>>,
    pub zone: Zone,
    pub forwarder: Arc<Forwarder>,
}

/// A finished response, before encoding.
struct Reply {
    metadata: Metadata,
    answers: Vec<Record>,
    authority: Vec<Record>,
    additionals: Vec<Record>,
}

impl DnsHandler {
    async fn reply(&self, request: &Request) -> Reply {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let mut reply = |code: ResponseCode| {
            metadata.response_code = code;
            Reply {
                metadata,
                answers: Vec::new(),
                authority: Vec::new(),
                additionals: Vec::new(),
            }
        };
        if request.metadata.op_code != OpCode::Query {
            return reply(ResponseCode::NotImp);
        }
        let Ok(info) = request.request_info() else {
            return reply(ResponseCode::FormErr);
        };
        let query = info.query.original();
        let (qname, qtype, class) = (query.name(), query.query_type(), query.query_class());
        if class != DNSClass::IN {
            return reply(ResponseCode::NotImp);
        }
        let resolution = match self.data.read() {
            Ok(data) => answer::resolve(&data, &self.zone, qname, qtype),
            Err(_) => return reply(ResponseCode::ServFail),
        };
        match resolution {
            Resolution::Answer(mut a) => {
                if let Some(target) = a.chase.take() {
                    match self.forwarder.lookup(&target, qtype, class).await {
                        Ok(m) => a.answers.extend(m.answers),
                        Err(e) => {
                            tracing::debug!(%target, error = %e, "ExternalName target did not resolve");
                            a.answers.clear();
                            if let Ok(data) = self.data.read() {
                                a.authority = vec![answer::soa(&data, &self.zone)];
                            }
                        }
                    }
                }
                // Spread clients over a headless Service's endpoints, as CoreDNS's
                // loadbalance plugin does.
                if a.answers.len() > 1
                    && matches!(qtype, RecordType::A | RecordType::AAAA)
                    && a.answers.iter().all(|r| r.record_type() == qtype)
                {
                    a.answers.shuffle(&mut rand::rng());
                }
                let mut r = reply(a.rcode);
                r.metadata.authoritative = true;
                r.answers = a.answers;
                r.authority = a.authority;
                r.additionals = a.additionals;
                r
            }
            Resolution::Forward => match self.forwarder.lookup(qname, qtype, class).await {
                Ok(m) => {
                    let mut r = reply(m.metadata.response_code);
                    r.metadata.recursion_available = true;
                    r.metadata.authoritative = m.metadata.authoritative;
                    r.metadata.authentic_data = m.metadata.authentic_data;
                    r.answers = m.answers;
                    r.authority = m.authorities;
                    r.additionals = m.additionals;
                    r
                }
                Err(e) => {
                    tracing::debug!(name = %qname, error = %e, "forwarding failed");
                    let mut r = reply(ResponseCode::ServFail);
                    r.metadata.recursion_available = true;
                    r
                }
            },
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let reply = self.reply(request).await;
        // Answer EDNS with EDNS, sized to what the client can take.
        let edns = request.edns.as_ref().map(|e| {
            let mut out = Edns::new();
            out.set_max_payload(e.max_payload().max(512));
            out
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let response = builder.build(
            reply.metadata,
            reply.answers.iter(),
            reply.authority.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "could not send a DNS response");
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                hickory_proto::op::Header {
                    metadata,
                    counts: Default::default(),
                }
                .into()
            }
        }
    }
}
