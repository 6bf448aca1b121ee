//! Nothing to build: this script exists so that cargo fetches the `protoc-bin-vendored`
//! build-dependency, whose protoc binary `.cargo/protoc` hands to etcd-client's build script
//! on machines without a system protoc.
fn main() {
    // Resolving the path proves the vendored binary exists for this host.
    if let Err(err) = protoc_bin_vendored::protoc_bin_path() {
        println!(
            "cargo:warning=no vendored protoc for this host ({err}); install protobuf-compiler"
        );
    }
}
