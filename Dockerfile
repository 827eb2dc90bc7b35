# A small image of gauntlet's static binary (musl, no libc, no shell): for `gauntlet k8s job`.
#   docker build -t registry.example/gauntlet:TAG .
# The build stage is Debian's Rust with the musl target. Checked on the project's machine (no
# image registry there, so not `docker build` itself): the same cargo command builds a
# static-pie binary (`ldd`: "statically linked"), 19 MB once stripped, that runs `validate`.
# Live capture (libpcap) is not in this image.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
 && strip -o /gauntlet target/x86_64-unknown-linux-musl/release/gauntlet

FROM scratch
COPY --from=build /gauntlet /gauntlet
# Not root; results go to a mounted volume (the Job mounts one at /results).
USER 65534:65534
WORKDIR /results
ENTRYPOINT ["/gauntlet"]
CMD ["--help"]
