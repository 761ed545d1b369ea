//! The generic netlink socket IPVS is programmed through (blocking; the backend runs it on
//! a blocking thread).

use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::dataplane::DataplaneError;

use super::netlink::{
    self, Dest, IPVS_GENL_NAME, Reply, Request, Service, ServiceKey, error_for, failed,
};

/// Requests sent in one datagram before their acks are read: enough to make 10,000
/// changes a few dozen round trips, few enough that the acks fit the receive buffer.
const BATCH: usize = 256;
const RECV_BUFFER: usize = 1 << 20;

/// A netlink socket bound to the IPVS family of one network namespace.
#[derive(Debug)]
pub struct IpvsSocket {
    fd: OwnedFd,
    family: u16,
    seq: u32,
}

fn os_error(what: &str) -> DataplaneError {
    failed(format!("{what}: {}", std::io::Error::last_os_error()))
}

fn open_raw() -> Result<OwnedFd, DataplaneError> {
    // SAFETY: plain syscalls on a descriptor we own from here on.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_GENERIC,
        );
        if fd < 0 {
            return Err(os_error("opening a generic netlink socket"));
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let size = RECV_BUFFER as libc::c_int;
        // Best effort: a smaller buffer only means smaller batches would have been wiser.
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        if libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        ) != 0
        {
            return Err(os_error("binding the netlink socket"));
        }
        Ok(fd)
    }
}

/// Opens the socket in the network namespace at `netns` (a socket stays in the namespace
/// it was made in), from a short-lived thread so this process's threads stay where they are.
fn open_in(netns: Option<&Path>) -> Result<OwnedFd, DataplaneError> {
    let Some(path) = netns else {
        return open_raw();
    };
    let path: PathBuf = path.to_path_buf();
    std::thread::spawn(move || {
        let ns =
            File::open(&path).map_err(|e| failed(format!("opening {}: {e}", path.display())))?;
        // SAFETY: setns changes only this thread, which ends right after.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(os_error(&format!("entering {}", path.display())));
        }
        open_raw()
    })
    .join()
    .map_err(|_| failed("the thread opening the netlink socket panicked".to_string()))?
}

impl IpvsSocket {
    /// Opens a socket and resolves the IPVS family id (fails when the kernel has no IPVS).
    pub fn open(netns: Option<&Path>) -> Result<Self, DataplaneError> {
        let fd = open_in(netns)?;
        let mut socket = IpvsSocket {
            fd,
            family: 0,
            seq: 0,
        };
        let seq = socket.next_seq();
        socket.send(&netlink::encode_get_family(IPVS_GENL_NAME, seq))?;
        let mut family = None;
        socket.receive_until(|reply| match reply {
            Reply::Data { seq: s, attrs, .. } if s == seq => {
                family = Some(netlink::decode_family_id(attrs)?);
                Ok(false)
            }
            Reply::Error { seq: s, errno } if s == seq => Err(failed(format!(
                "the kernel has no IPVS generic netlink family (is the ip_vs module loaded?): {}",
                std::io::Error::from_raw_os_error(errno)
            ))),
            Reply::Ack { seq: s } | Reply::Done { seq: s } if s == seq => Ok(true),
            _ => Ok(false),
        })?;
        socket.family =
            family.ok_or_else(|| failed("no IPVS family id in the reply".to_string()))?;
        Ok(socket)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, bytes: &[u8]) -> Result<(), DataplaneError> {
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: the buffer and address outlive the call.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(os_error("sending to netlink"));
        }
        Ok(())
    }

    /// Reads datagrams and hands each message to `handle` until it returns `true`.
    fn receive_until(
        &self,
        mut handle: impl FnMut(Reply<'_>) -> Result<bool, DataplaneError>,
    ) -> Result<(), DataplaneError> {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // SAFETY: recv writes at most buf.len() bytes into buf.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(failed(format!("receiving from netlink: {err}")));
            }
            for reply in netlink::parse_messages(&buf[..n as usize])? {
                if handle(reply)? {
                    return Ok(());
                }
            }
        }
    }

    /// Runs `requests` in batches (several messages per datagram, then their acks). Every
    /// request is tried; the first failure is returned. Deleting what is already gone is
    /// not a failure.
    pub fn execute(&mut self, requests: &[Request]) -> Result<(), DataplaneError> {
        let mut first_error = None;
        for chunk in requests.chunks(BATCH) {
            let mut pending: HashMap<u32, &Request> = HashMap::with_capacity(chunk.len());
            let mut datagram = Vec::with_capacity(chunk.len() * 96);
            for request in chunk {
                let seq = self.next_seq();
                datagram.extend(netlink::encode(request, self.family, seq));
                pending.insert(seq, request);
            }
            self.send(&datagram)?;
            self.receive_until(|reply| {
                match reply {
                    Reply::Ack { seq } => {
                        pending.remove(&seq);
                    }
                    Reply::Error { seq, errno } => {
                        if let Some(request) = pending.remove(&seq)
                            && !request.is_gone(errno)
                        {
                            first_error
                                .get_or_insert_with(|| error_for(&request.to_string(), errno));
                        }
                    }
                    _ => {}
                }
                Ok(pending.is_empty())
            })?;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Runs a dump request and returns the attributes of every reply message.
    fn dump(&mut self, request: &Request) -> Result<Vec<Vec<u8>>, DataplaneError> {
        let seq = self.next_seq();
        self.send(&netlink::encode(request, self.family, seq))?;
        let mut out = Vec::new();
        self.receive_until(|reply| match reply {
            Reply::Data { seq: s, attrs, .. } if s == seq => {
                out.push(attrs.to_vec());
                Ok(false)
            }
            Reply::Done { seq: s } | Reply::Ack { seq: s } if s == seq => Ok(true),
            Reply::Error { seq: s, errno } if s == seq => {
                Err(error_for(&request.to_string(), errno))
            }
            _ => Ok(false),
        })?;
        Ok(out)
    }

    /// Every virtual server in the kernel (of the kinds this backend programs).
    pub fn services(&mut self) -> Result<Vec<Service>, DataplaneError> {
        let mut out = Vec::new();
        for attrs in self.dump(&Request::GetServices)? {
            if let Some(s) = netlink::decode_service(&attrs)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The real servers of one virtual server.
    pub fn dests(&mut self, key: &ServiceKey) -> Result<Vec<Dest>, DataplaneError> {
        let family: IpAddr = key.addr;
        self.dump(&Request::GetDests(*key))?
            .iter()
            .map(|attrs| netlink::decode_dest(attrs, family))
            .collect()
    }
}
