#!/usr/bin/env bash
# The scheduled monitoring job of the CI templates (.github/workflows/monitor.yml; the `monitor` job of
# .gitlab-ci.yml): is production still served what its model was trained on? On drift, retrain on the
# latest data and propose the candidate as a pull/merge request. It never pushes to the base branch, never
# merges and never promotes: a person reads the gate's verdict and decides.
#
#   1. MLNB_PREDICTION_LOG_URL: where the service's prediction log (mlnb serve --prediction-log) is shipped,
#      anything `dvc get-url` reads (s3://, gs://, azure://, https://, a path). Not set: nothing to monitor,
#      exit 0. Fetched into predictions.jsonl (and its rotated .1 when there is one beside it).
#   2. mlnb build: the reference, the train split the model was fitted on (after `mlnb pull` with a committed
#      dvc.lock it re-runs nothing).
#   3. mlnb monitor --since MLNB_MONITOR_SINCE (default 24h) --json --html: reports/monitor.json, .html.
#      exit 0: no drift, done (exit 0). 1 with a drift result: step 4. 2 (bad input: the log, the reference,
#      params.yaml) or anything else: the job fails with that code.
#   4. MLNB_RAW_DATA_URL: the latest data, a directory (it becomes data/raw) or one file (written into
#      data/raw under its own name). Then `dvc add data/raw` when DVC tracks it (data/raw.dvc), else git
#      does. Not set, or no different from the data here: exit 1 (drift and nothing new to retrain on).
#   5. mlnb build (the gate), mlnb verdict, mlnb report; mlnb push when DVC tracks what is committed.
#   6. a branch mlnb/retrain-<UTC time> with data/raw.dvc (or data/raw) and dvc.lock (when git tracks it),
#      pushed. GitHub Actions: `gh pr create` (GH_TOKEN). GitLab CI: `git push -o merge_request.create`
#      (with MLNB_PUSH_TOKEN, a project access token with write_repository, when set; else the
#      checkout's own credentials). Elsewhere: the branch is pushed to origin.
#      Exit: the build's (0, or 1 when the gate failed or a task did: the proposal is opened either way).
#
# Other settings: MLNB_RAW_DATA_PATH (default data/raw), MLNB_BASE_BRANCH (default: the branch checked out),
# MLNB_GIT_NAME / MLNB_GIT_EMAIL (the commit's author when git has none configured).
# URLs are never printed (a presigned URL carries its signature): errors of `dvc get-url` may show them.
set -euo pipefail

log_url="${MLNB_PREDICTION_LOG_URL:-}"
data_url="${MLNB_RAW_DATA_URL:-}"
since="${MLNB_MONITOR_SINCE:-24h}"
raw="${MLNB_RAW_DATA_PATH:-data/raw}"
raw="${raw%/}"

say() { printf 'monitor-ci: %s\n' "$*"; }

if [ -z "$log_url" ]; then
  say "MLNB_PREDICTION_LOG_URL is not set: nothing to monitor (set it to where the service's prediction log is shipped)"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Builds record their outputs in dvc.lock when the project commits one (as `mlnb build` in CI does);
# otherwise they record nothing (`--no-dvc`, as a new project's `make build` does).
records_dvc_lock() { git ls-files --error-unmatch dvc.lock >/dev/null 2>&1; }
build() {
  if records_dvc_lock; then
    mlnb build
  else
    mlnb build --no-dvc
  fi
}
json_field() {  # json_field FILE KEY...: a value of a JSON file as text (a list joined by ", "; "" when absent)
  python3 -c 'import json, sys
try:
    v = json.load(open(sys.argv[1]))
    for key in sys.argv[2:]:
        v = v.get(key, "")
except (OSError, ValueError, AttributeError):
    v = ""
print(", ".join(map(str, v)) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else v)' "$@"
}

# --- 1. the production prediction log ------------------------------------------------------------------
say "fetching the prediction log (MLNB_PREDICTION_LOG_URL) into predictions.jsonl"
rm -rf predictions.jsonl predictions.jsonl.1
dvc get-url "$log_url" predictions.jsonl
case "$log_url" in
  *\?*) ;;  # a presigned/query URL names one object
  *) if dvc get-url -q "$log_url.1" predictions.jsonl.1 >/dev/null 2>&1; then say "and its rotated predictions.jsonl.1"; fi ;;
esac

# --- 2. the reference: the train split at this commit --------------------------------------------------
say "building $(git rev-parse --short HEAD) for the reference (the train split the model was fitted on)"
build

# --- 3. drift? ----------------------------------------------------------------------------------------
mkdir -p reports
status=0
mlnb monitor --log predictions.jsonl --since "$since" --json --html reports/monitor.html > reports/monitor.json || status=$?
case "$status" in
  0)
    say "no drift since $since (reports/monitor.html)"
    exit 0 ;;
  1)
    if [ "$(json_field reports/monitor.json drift)" != "true" ]; then
      say "mlnb monitor exited 1 without a drift result: it failed (see above)"
      exit 1
    fi ;;
  *)
    say "mlnb monitor failed with exit $status (2: bad input: the log, the reference or params.yaml; see above)"
    exit "$status" ;;
esac
drifted="$(json_field reports/monitor.json drifted_features)"
predictions="$(json_field reports/monitor.json prediction drifted)"
version="$(json_field reports/monitor.json window model_version)"
rows="$(json_field reports/monitor.json window rows)"
say "DRIFT: model version $version, $rows rows since $since; features: ${drifted:-none}; predictions drifted: $predictions"

# The branch the proposal is for (the schedule's branch), known before anything is fetched or pushed.
base="${MLNB_BASE_BRANCH:-${GITHUB_REF_NAME:-${CI_COMMIT_BRANCH:-$(git rev-parse --abbrev-ref HEAD)}}}"
if [ -z "$base" ] || [ "$base" = HEAD ] || [ "${base#mlnb/retrain-}" != "$base" ]; then
  say "no base branch to propose a retrain against (got '$base'): set MLNB_BASE_BRANCH"
  exit 2
fi

# --- 4. the latest data --------------------------------------------------------------------------------
if [ -z "$data_url" ]; then
  say "no MLNB_RAW_DATA_URL to fetch newer data from: nothing to retrain on (reports/monitor.html)"
  exit 1
fi
say "fetching the latest data (MLNB_RAW_DATA_URL) into $raw"
dvc get-url "$data_url" "$work/new"
if [ -d "$work/new" ]; then
  rm -rf "$raw"
  mkdir -p "$(dirname "$raw")"
  mv "$work/new" "$raw"
else
  name="${data_url%%\?*}"
  mkdir -p "$raw"
  mv "$work/new" "$raw/${name##*/}"
fi
if [ -f "$raw.dvc" ]; then
  dvc add "$raw"
  tracked="$raw.dvc"
else
  tracked="$raw"
fi
if [ -z "$(git status --porcelain --untracked-files=all -- "$tracked")" ]; then
  say "the data at MLNB_RAW_DATA_URL is the data already here: nothing new to retrain on (reports/monitor.html)"
  exit 1
fi

# --- 5. the candidate: build (the gate), verdict, push -----------------------------------------------------
built=0
build || built=$?
if [ "$built" -ne 0 ] && [ "$built" -ne 1 ]; then
  say "mlnb build failed with exit $built (bad input): no proposal"
  exit "$built"
fi
verdict="$(mlnb verdict)"
reason="$(json_field products/evaluate/gate.json reason)"
say "gate verdict: $verdict${reason:+ ($reason)}"
if [ -f products/last_build.json ]; then
  mlnb report || say "mlnb report failed; the proposal goes ahead"
fi
if [ -f "$raw.dvc" ] || records_dvc_lock; then
  mlnb push
fi

# --- 6. propose: a new branch and its pull/merge request ------------------------------------------------
branch="mlnb/retrain-$(date -u +%Y%m%d-%H%M%S)"
files=("$tracked")
ignore="$(dirname "$raw")/.gitignore"  # `dvc add` lists the data there when it starts tracking it
if [ -n "$(git status --porcelain -- "$ignore")" ]; then
  files+=("$ignore")
fi
if records_dvc_lock && ! git diff --quiet -- dvc.lock; then
  files+=(dvc.lock)
fi
git switch -q -c "$branch"
git add -A -- "${files[@]}"
if [ -z "$(git config user.email || true)" ]; then
  if [ "${GITHUB_ACTIONS:-}" = true ]; then
    export GIT_AUTHOR_NAME="${MLNB_GIT_NAME:-github-actions[bot]}"
    export GIT_AUTHOR_EMAIL="${MLNB_GIT_EMAIL:-41898282+github-actions[bot]@users.noreply.github.com}"
  else
    export GIT_AUTHOR_NAME="${MLNB_GIT_NAME:-${GITLAB_USER_NAME:-mlnb monitor}}"
    export GIT_AUTHOR_EMAIL="${MLNB_GIT_EMAIL:-${GITLAB_USER_EMAIL:-mlnb-monitor@localhost}}"
  fi
  export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
fi
title="Retrain after drift: model version $version, gate verdict $verdict"
job_url="${CI_JOB_URL:-}"
if [ -n "${GITHUB_RUN_ID:-}" ]; then
  job_url="${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:-}/actions/runs/$GITHUB_RUN_ID"
fi
summary="mlnb monitor found drift in what production serves model version $version ($rows rows since $since; \
drifted features: ${drifted:-none}; predictions drifted: $predictions). This branch updates ${files[*]} to the latest \
data (MLNB_RAW_DATA_URL) and the pipeline was rebuilt: gate verdict $verdict${reason:+ ($reason)}. Nothing was \
promoted. Reports (monitor.html, the build report): ${job_url:-the job artifacts}. Merge to make this data the \
baseline; the base branch's CI builds it again, and its build run is what \`mlnb promote\` takes."
git commit -q -m "$title" -m "$summary"

say "pushing $branch (base: $base)"
if [ "${GITHUB_ACTIONS:-}" = true ]; then
  git push -q origin "HEAD:refs/heads/$branch"
  printf '%s\n' "$summary" > "$work/body.md"
  gh pr create --base "$base" --head "$branch" --title "$title" --body-file "$work/body.md"
elif [ "${GITLAB_CI:-}" = true ]; then
  remote=origin
  auth=()
  if [ -n "${MLNB_PUSH_TOKEN:-}" ]; then  # a job token cannot push by default: a project access token can
    remote="${CI_SERVER_URL:?}/${CI_PROJECT_PATH:?}.git"
    auth=(-c "http.extraHeader=Authorization: Basic $(printf 'oauth2:%s' "$MLNB_PUSH_TOKEN" | base64 | tr -d '\n')")
  fi
  git ${auth[@]+"${auth[@]}"} push -q -o merge_request.create -o "merge_request.target=$base" \
    -o "merge_request.title=$title" -o "merge_request.description=$summary" -o merge_request.remove_source_branch \
    "$remote" "HEAD:refs/heads/$branch"
else
  git push -q origin "HEAD:refs/heads/$branch"
  say "open a pull request from $branch into $base"
fi
say "proposed $branch: gate verdict $verdict"
exit "$built"
