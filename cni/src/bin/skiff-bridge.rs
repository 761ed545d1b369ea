//! The skiff-bridge CNI plugin.

fn main() {
    skiff_cni::spec::run(&skiff_cni::bridge::Bridge)
}
