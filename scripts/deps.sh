# Sourced by run-demo and run-tests: install what arbor needs to build and
# test, from Debian's packages, if it is not there yet.
ARBOR_BUILD_DEPS="gcc make cmake pkg-config libev-dev libinih-dev libsystemd-dev"
# s6, runit and supervisor: the peers bench.smoke runs side by side with arbord.
ARBOR_TEST_DEPS="libcmocka-dev python3 jq systemd util-linux procps strace clang libclang-rt-14-dev llvm s6 runit supervisor"

arbor_install() {
    missing=""
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "installing:$missing"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
    fi
}
