"""The stand-in through the real cvat-sdk: auth, tasks/jobs, filters, issues, frames, faults."""

from __future__ import annotations

import io

import pytest
import urllib3
from cvat_sdk import make_client, models
from cvat_sdk.api_client import exceptions
from cvat_sdk.core.client import AccessTokenCredentials
from cvat_sdk.core.filters import F
from PIL import Image

from cvat_standin import CvatStandin


def test_login_with_password_sets_session_and_csrf(cvat_standin: CvatStandin) -> None:
    client = make_client("http://127.0.0.1", port=cvat_standin.port,
                         credentials=cvat_standin.admin_credentials)
    cookies = client.api_client.cookies
    assert "sessionid" in cookies and "csrftoken" in cookies
    assert client.users.retrieve_current_user().username == "admin"
    # An unsafe call through the session must carry the CSRF header; the SDK sends it.
    task_id = cvat_standin.seed_task("t", [{"name": "car"}], (4, 32, 24))
    job = client.tasks.retrieve(task_id).get_jobs()[0]
    job.update(models.PatchedJobWriteRequest(state="in progress"))
    assert client.jobs.retrieve(job.id).state == "in progress"
    client.logout()
    assert "sessionid" not in client.api_client.cookies


def test_login_with_access_token_sends_bearer(cvat_standin: CvatStandin) -> None:
    client = make_client("http://127.0.0.1", port=cvat_standin.port,
                         credentials=AccessTokenCredentials(cvat_standin.admin_token))
    assert client.users.retrieve_current_user().id == cvat_standin.admin_id
    assert client.get_server_version().public == "2.80.0"


def test_bad_credentials_and_no_credentials(cvat_standin: CvatStandin) -> None:
    with pytest.raises(exceptions.ApiException) as info:
        make_client("http://127.0.0.1", port=cvat_standin.port, credentials=("admin", "wrong"))
    assert info.value.status == 400
    anonymous = make_client("http://127.0.0.1", port=cvat_standin.port)
    with pytest.raises(exceptions.UnauthorizedException):
        anonymous.users.retrieve_current_user()
    bad_pat = make_client("http://127.0.0.1", port=cvat_standin.port,
                          credentials=AccessTokenCredentials("nope"))
    with pytest.raises(exceptions.UnauthorizedException):
        bad_pat.tasks.list()


def test_old_server_version_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    server = CvatStandin(version="2.73.1")
    uid = server.seed_user("u", "p")
    with server:
        client = make_client("http://127.0.0.1", port=server.port,
                             credentials=AccessTokenCredentials(server.create_access_token(uid)))
        assert str(client.get_server_version()) == "2.73.1"
    assert "not compatible" in caplog.text


def test_task_and_jobs_like_cvat(cvat_standin: CvatStandin, cvat_client) -> None:
    task_id = cvat_standin.seed_task("cars", [{"name": "car"}, {"name": "person"}],
                                     (60, 64, 48), segment_size=25)
    task = cvat_client.tasks.retrieve(task_id)
    assert (task.size, task.segment_size, task.overlap, task.jobs.count) == (60, 25, 0, 3)
    jobs = task.get_jobs()
    assert [(j.start_frame, j.stop_frame, j.frame_count) for j in jobs] == \
        [(0, 24, 25), (25, 49, 25), (50, 59, 10)]
    assert {(j.stage, j.state, j.status, j.type) for j in jobs} == \
        {("annotation", "new", "annotation", "annotation")}
    assert [lb.name for lb in task.get_labels()] == ["car", "person"]
    overlapped = cvat_client.tasks.retrieve(
        cvat_standin.seed_task("o", [{"name": "car"}], (60, 64, 48), segment_size=25, overlap=5))
    assert [(j.start_frame, j.stop_frame) for j in overlapped.get_jobs()] == \
        [(0, 24), (20, 44), (40, 59)]


@pytest.mark.parametrize(
    ("mode", "segment_size", "overlap", "stored", "ranges"),
    [
        # not sent: 5 frames for a video (interpolation) task, none for an image task
        ("interpolation", 30, None, (30, 5), [(0, 29), (25, 54), (50, 59)]),
        ("annotation", 30, None, (30, 0), [(0, 29), (30, 59)]),
        # capped at segment_size // 2 instead of rejected
        ("annotation", 10, 9, (10, 5), [(s, min(s + 9, 59)) for s in range(0, 55, 5)]),
        ("interpolation", 6, None, (6, 3), [(s, min(s + 5, 59)) for s in range(0, 57, 3)]),
        # no segment size: one job over the whole task, overlap capped at half of it
        ("annotation", 0, 50, (60, 30), [(0, 59)]),
    ],
)
def test_overlap_defaults_and_cap_like_cvat(cvat_standin: CvatStandin, cvat_client, mode: str,
                                            segment_size: int, overlap: int | None,
                                            stored: tuple[int, int],
                                            ranges: list[tuple[int, int]]) -> None:
    """``_generate_segment_params``: default overlap by mode, capped at segment_size // 2."""
    task = cvat_client.tasks.retrieve(cvat_standin.seed_task(
        "v", [{"name": "car"}], (60, 64, 48), segment_size=segment_size, overlap=overlap, mode=mode))
    assert (task.segment_size, task.overlap) == stored
    assert [(j.start_frame, j.stop_frame) for j in task.get_jobs()] == ranges


def test_job_patch_resets_state_on_stage_change(cvat_standin: CvatStandin, cvat_client) -> None:
    task_id = cvat_standin.seed_task("t", [{"name": "car"}], (10, 32, 24), segment_size=5)
    reviewer = cvat_standin.seed_user("reviewer")
    job = cvat_client.tasks.retrieve(task_id).get_jobs()[0]
    before = job.updated_date
    job.update(models.PatchedJobWriteRequest(state="completed"))
    assert (job.stage, job.state) == ("annotation", "completed")
    job.update(models.PatchedJobWriteRequest(stage="validation", assignee=reviewer))
    assert (job.stage, job.state, job.status) == ("validation", "new", "validation")
    assert job.assignee.username == "reviewer" and job.updated_date > before
    job.update(models.PatchedJobWriteRequest(stage="annotation", state="rejected"))
    assert (job.stage, job.state) == ("annotation", "rejected")
    r = urllib3.PoolManager().request(
        "PATCH", f"{cvat_standin.url}/api/jobs/{job.id}", json={"state": "done"},
        headers={"Authorization": f"Bearer {cvat_standin.admin_token}"})
    assert r.status == 400 and "state" in r.json()


def test_jobs_list_filters(cvat_standin: CvatStandin, cvat_client) -> None:
    t1 = cvat_standin.seed_task("a", [{"name": "car"}], (30, 32, 24), segment_size=5)
    t2 = cvat_standin.seed_task("b", [{"name": "car"}], (10, 32, 24), segment_size=5)
    reviewer = cvat_standin.seed_user("rev")
    j1, j2, j3 = cvat_standin.job_ids(t1)[:3]
    cvat_standin.set_job(j1, state="completed")
    cvat_standin.set_job(j2, stage="acceptance", state="completed")
    cvat_standin.set_job(j3, stage="validation", assignee=reviewer)
    t2_job = cvat_standin.job_ids(t2)[0]
    cvat_standin.set_job(t2_job, state="completed")
    assert len(cvat_client.jobs.list()) == 8  # paginated: page_size 10 default, 8 jobs
    assert {j.id for j in cvat_client.jobs.list(state="completed")} == {j1, j2, t2_job}
    assert {j.id for j in cvat_client.jobs.list(state="completed", task_id=t1)} == {j1, j2}
    assert [j.id for j in cvat_client.jobs.list(filter=F.stage == "acceptance")] == [j2]
    assert {j.id for j in cvat_client.jobs.list(
        filter=(F.state == "completed") & ~(F.stage == "acceptance"))} == {j1, t2_job}
    assert {j.id for j in cvat_client.jobs.list(state__in=["completed", "new"],
                                                task_id=t2)} == set(cvat_standin.job_ids(t2))
    assert [j.id for j in cvat_client.jobs.list(assignee="rev")] == [j3]
    assert [j.id for j in cvat_client.jobs.list(assignee__isset=True)] == [j3]
    page = cvat_client.api_client.jobs_api.list(task_id=t1, page_size=4, sort="-id")[0]
    assert page.count == 6 and page.next is not None and page.previous is None
    assert [r.id for r in page.results] == sorted(cvat_standin.job_ids(t1), reverse=True)[:4]
    with pytest.raises(exceptions.ApiException) as info:
        cvat_client.jobs.list(filter=F.nonsense == 1)
    assert info.value.status == 400 and "'nonsense' term is not supported" in str(info.value.body)


def test_issues_and_comments(cvat_standin: CvatStandin, cvat_client) -> None:
    task_id = cvat_standin.seed_task("t", [{"name": "car"}], (10, 32, 24), segment_size=5)
    j1, j2 = cvat_standin.job_ids(task_id)
    issue = cvat_client.issues.create(models.IssueWriteRequest(
        frame=6, position=[1.0, 2.0, 10.0, 12.0], job=j2, message="id switch: track 3 -> 7"))
    assert (issue.frame, issue.job, issue.resolved, issue.comments.count) == (6, j2, False, 1)
    cvat_client.comments.create(models.CommentWriteRequest(issue=issue.id, message="more"))
    assert [c.message for c in issue.get_comments()] == ["id switch: track 3 -> 7", "more"]
    assert [i.id for i in cvat_client.jobs.retrieve(j2).get_issues()] == [issue.id]
    assert cvat_client.jobs.retrieve(j2).issues.count == 1
    assert cvat_client.jobs.retrieve(j1).get_issues() == []
    issue.update(models.PatchedIssueWriteRequest(resolved=True))
    assert cvat_client.issues.retrieve(issue.id).resolved is True
    assert cvat_client.issues.list(task_id=task_id, resolved=False) == []
    assert len(cvat_client.issues.list(task_id=task_id, frame_id=6)) == 1
    with pytest.raises(exceptions.ApiException) as info:  # frame 2 is in job 1, not job 2
        cvat_client.issues.create(models.IssueWriteRequest(
            frame=2, position=[0.0, 0.0, 1.0, 1.0], job=j2, message="x"))
    assert info.value.status == 400
    issue.remove()
    assert cvat_client.issues.list() == []


def test_frames_and_meta(cvat_standin: CvatStandin, cvat_client, tmp_path) -> None:
    paths = []
    for i in range(3):
        p = tmp_path / f"img_{i}.jpg"
        Image.new("RGB", (40 + i, 30), (i * 50, 0, 0)).save(p)
        paths.append(p)
    task = cvat_client.tasks.retrieve(cvat_standin.seed_task("f", [{"name": "car"}], paths,
                                                             segment_size=2))
    meta = task.get_meta()
    assert (meta.size, meta.start_frame, meta.stop_frame) == (3, 0, 2)
    assert [(f.name, f.width, f.height) for f in meta.frames] == \
        [("img_0.jpg", 40, 30), ("img_1.jpg", 41, 30), ("img_2.jpg", 42, 30)]
    assert task.get_frame(1, quality="original").read() == paths[1].read_bytes()
    job2 = task.get_jobs()[1]
    assert job2.get_meta().frames[0].name == "img_2.jpg"
    assert Image.open(io.BytesIO(job2.get_frame(2, quality="original").read())).size == (42, 30)
    with pytest.raises(exceptions.ApiException) as info:
        job2.get_frame(0, quality="original")  # Job.get_frame needs quality in 2.80
    assert info.value.status == 400
    generated = cvat_client.tasks.retrieve(cvat_standin.seed_task("g", [{"name": "c"}],
                                                                  (2, 16, 8)))
    assert Image.open(io.BytesIO(generated.get_frame(1).read())).size == (16, 8)


def test_injected_500_and_timeout_reach_the_sdk(cvat_standin: CvatStandin, cvat_client) -> None:
    task_id = cvat_standin.seed_task("t", [{"name": "car"}], (10, 32, 24), segment_size=5)
    job_id = cvat_standin.job_ids(task_id)[0]
    cvat_standin.inject_fault("GET", rf"^/api/jobs/{job_id}$", status=500, on_call=2)
    cvat_client.jobs.retrieve(job_id)
    with pytest.raises(exceptions.ServiceException) as info:
        cvat_client.jobs.retrieve(job_id)
    assert info.value.status == 500
    cvat_client.jobs.retrieve(job_id)  # times=1: the third call passes again
    # urllib3 under the SDK retries an idempotent request 3 times after a read timeout, so
    # one silent answer is invisible to the client; four in a row reach it.
    cvat_standin.inject_fault("GET", r"^/api/tasks/\d+$", status="timeout", delay_s=0.15)
    assert cvat_client.api_client.tasks_api.retrieve(task_id, _request_timeout=0.1)[0].id \
        == task_id
    # A POST is not retried: the client sees the timeout, and with when="after" the server
    # did create the issue, which is what a sync loop must cope with.
    cvat_standin.inject_fault("POST", r"^/api/issues$", status="timeout", delay_s=0.15,
                              when="after")
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        cvat_client.api_client.issues_api.create(models.IssueWriteRequest(
            frame=0, position=[0.0, 0.0, 1.0, 1.0], job=job_id, message="m"),
            _request_timeout=0.1)
    assert len(cvat_client.issues.list(job_id=job_id)) == 1
    assert cvat_client.tasks.retrieve(task_id).id == task_id
    statuses = [r.status for r in cvat_standin.request_log if r.path == f"/api/jobs/{job_id}"]
    assert statuses == [200, 500, 200]


def test_unknown_endpoint_is_json_404(cvat_standin: CvatStandin) -> None:
    http = urllib3.PoolManager()
    r = http.request("GET", f"{cvat_standin.url}/api/nothing-here",
                     headers={"Authorization": f"Bearer {cvat_standin.admin_token}"})
    assert r.status == 404 and r.json() == {"detail": "Not found."}
    r = http.request("DELETE", f"{cvat_standin.url}/api/jobs",
                     headers={"Authorization": f"Bearer {cvat_standin.admin_token}"})
    assert r.status == 405


def test_pagination_follows_next_and_date_lookups(cvat_standin: CvatStandin, cvat_client) -> None:
    task_id = cvat_standin.seed_task("t", [{"name": "car"}], (30, 32, 24), segment_size=2)
    assert len(cvat_client.jobs.list(task_id=task_id)) == 15  # two pages of 10
    page2 = cvat_client.api_client.jobs_api.list(task_id=task_id, page=2)[0]
    assert page2.count == 15 and page2.next is None and page2.previous.endswith("page=1") \
        and len(page2.results) == 5
    with pytest.raises(exceptions.NotFoundException):
        cvat_client.api_client.jobs_api.list(task_id=task_id, page=3)
    late = cvat_standin.job_ids(task_id)[-1]
    stamp = cvat_client.jobs.retrieve(late).updated_date.isoformat()
    cvat_standin.set_job(late, state="completed")
    assert [j.id for j in cvat_client.jobs.list(updated_date__gt=stamp)] == [late]


def test_webhooks_signed_update_job_events(cvat_standin: CvatStandin, cvat_client) -> None:
    import hashlib
    import hmac
    import json
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    received: list[tuple[dict, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((json.loads(body), self.headers.get("X-Signature-256", "")))
            expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
            self.send_response(200 if received[-1][1] == expected else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = HTTPServer(("127.0.0.1", 0), Receiver)
    Thread(target=receiver.serve_forever, args=(0.05,), daemon=True).start()
    try:
        project = cvat_standin.seed_project("p")
        task_id = cvat_standin.seed_task("t", [{"name": "car"}], (10, 32, 24), segment_size=5,
                                         project=project)
        hook = cvat_client.api_client.webhooks_api.create(models.WebhookWriteRequest(
            target_url=f"http://127.0.0.1:{receiver.server_address[1]}/hook", type="project",
            project_id=project, events=["update:job", "create:issue"], secret="s3cret",
            content_type="application/json"))[0]
        job = cvat_client.tasks.retrieve(task_id).get_jobs()[0]
        job.update(models.PatchedJobWriteRequest(state="completed"))
        cvat_standin.wait_for_webhooks()
        payload, _ = received[-1]
        assert payload["event"] == "update:job" and payload["job"]["id"] == job.id
        assert payload["job"]["state"] == "completed" and payload["webhook_id"] == hook.id
        assert payload["before_update"]["state"] == "new" and "stage" not in payload["before_update"]
        assert {d["status"] for d in cvat_standin.webhook_deliveries} == {200}
        cvat_client.issues.create(models.IssueWriteRequest(
            frame=1, position=[0.0, 0.0, 1.0, 1.0], job=job.id, message="m"))
        cvat_standin.wait_for_webhooks()
        assert [p["event"] for p, _ in received] == ["update:job", "create:issue"]
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_session_writes_need_csrf_header(cvat_standin: CvatStandin) -> None:
    http = urllib3.PoolManager()
    r = http.request("POST", f"{cvat_standin.url}/api/auth/login",
                     json={"username": "admin", "password": "admin-password"})
    assert r.status == 200 and set(r.json()) == {"key"}
    cookies = {c.split("=", 1)[0]: c.split("=", 1)[1].split(";")[0]
               for c in r.headers.getlist("Set-Cookie")}
    task_id = cvat_standin.seed_task("t", [{"name": "car"}], (2, 8, 8))
    job_id = cvat_standin.job_ids(task_id)[0]
    cookie = f"sessionid={cookies['sessionid']}; csrftoken={cookies['csrftoken']}"
    url = f"{cvat_standin.url}/api/jobs/{job_id}"
    assert http.request("GET", url, headers={"Cookie": cookie}).status == 200
    r = http.request("PATCH", url, json={"state": "completed"}, headers={"Cookie": cookie})
    assert r.status == 403 and r.json()["detail"].startswith("CSRF Failed")
    r = http.request("PATCH", url, json={"state": "completed"},
                     headers={"Cookie": cookie, "X-CSRFToken": cookies["csrftoken"]})
    assert r.status == 200 and r.json()["state"] == "completed"
    r = http.request("GET", f"{cvat_standin.url}/api/jobs/9999", headers={"Cookie": cookie})
    assert r.status == 404 and r.json() == {"detail": "Not found."}
