//! The skiff-ipam CNI plugin: host-local's replacement, run through the CNI protocol.

fn main() {
    skiff_cni::spec::run(&skiff_cni::ipam::Ipam)
}
