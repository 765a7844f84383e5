# Sourced by the benchmarks that pull or push: starts Debian's
# docker-registry on 127.0.0.1 with its storage under $1, and sets
# `port` and `registry_pid` (the caller's cleanup kills it).
start_registry() {
  local dir=$1
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$dir/registry.yml" <<EOC
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/registry
http:
  addr: 127.0.0.1:$port
EOC
  /usr/bin/docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: docker-registry did not start (see $dir/registry.log)" >&2
  return 1
}
