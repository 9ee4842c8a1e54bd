"""Attachments in the sandbox, through atlassian-python-api 4.x and plain HTTP as Cloud answers them: uploads
and new versions, the v1 and v2 shapes, the download redirect to the media store (and the servlet path
that refuses API tokens), CQL, deletion, permissions, and the generated files (valid for real readers)."""

from __future__ import annotations

import io
import threading
import time
import zipfile

import pytest
import requests
from atlassian import Confluence

from confluence_assets.sandbox import ConfluenceServer, Site, files, generate_corpus
from confluence_assets.sandbox.attachments import attach_samples
from confluence_assets.sandbox.files import GIB, GeneratedBlob

PDF = "application/pdf"


@pytest.fixture
def site() -> Site:
    site = Site(timezone="Asia/Seoul")
    site.clock.set("2026-03-01T00:00:00Z")
    site.add_space("ENG", "Engineering")
    return site


@pytest.fixture
def conf(site):
    with ConfluenceServer(site) as server:
        yield server


@pytest.fixture
def client(conf):
    with Confluence(conf.url, username=conf.email, password=conf.api_token, cloud=True) as c:
        yield c


@pytest.fixture
def http(conf):
    with requests.Session() as session:
        session.auth = (conf.email, conf.api_token)
        yield session


def test_attach_content_then_again_is_a_new_version_of_the_same_attachment(site, client):
    page = site.create_page("ENG", "Specs", "<p>body</p>")
    site.clock.set("2026-03-02T00:00:00Z")
    first = client.attach_content(b"%PDF-1.4 one", "spec.pdf", content_type=PDF, page_id=page.id, comment="first")
    att = first["results"][0]
    assert att["title"] == "spec.pdf" and att["version"]["number"] == 1
    assert att["extensions"]["fileSize"] == 12 and att["extensions"]["comment"] == "first"
    assert att["container"]["id"] == page.id
    site.clock.set("2026-03-03T00:00:00Z")
    again = client.attach_content(b"%PDF-1.4 two!", "spec.pdf", content_type=PDF, page_id=page.id)
    assert again["id"] == att["id"] and again["version"]["number"] == 2  # the /data update: one object
    listed = client.get_attachments_from_content(page.id, expand="version,container")["results"]
    assert [(a["id"], a["version"]["number"], a["extensions"]["fileSize"]) for a in listed] == [(att["id"], 2, 13)]
    assert listed[0]["version"]["when"] == "2026-03-03T00:00:00.000Z"
    assert "version=2&modificationDate=1772496000000&cacheVersion=1&api=v2" in listed[0]["_links"]["download"]
    # The page itself did not change: attachments are not page versions.
    got = client.get_page_by_id(page.id, expand="version")
    assert got["version"]["number"] == 1 and got["version"]["when"] == "2026-03-01T00:00:00.000Z"


def test_attach_file_detects_the_media_type_and_downloads_follow_the_redirect(site, client, conf, tmp_path, http):
    page = site.create_page("ENG", "Deck")
    path = tmp_path / "slides.pptx"
    path.write_bytes(files.pptx(["Quarterly zyzzyva review"]))
    att = client.attach_file(str(path), page_id=page.id)["results"][0]
    assert att["metadata"]["mediaType"] == files.MEDIA_TYPES["pptx"]
    url = f"{conf.url}/rest/api/content/{page.id}/child/attachment/{att['id']}/download"
    raw = http.get(url, allow_redirects=False)
    assert raw.status_code == 302 and "/media/file/" in raw.headers["Location"]
    assert "token=" in raw.headers["Location"] and "/wiki/" not in raw.headers["Location"]
    media = requests.get(raw.headers["Location"])  # no credentials: the signed token is enough
    assert media.status_code == 200 and media.content == path.read_bytes()
    assert media.headers["Content-Type"] == files.MEDIA_TYPES["pptx"]
    assert int(media.headers["Content-Length"]) == path.stat().st_size
    body = client.get(f"rest/api/content/{page.id}/child/attachment/{att['id']}/download", not_json_response=True)
    assert body == path.read_bytes()  # the client follows the 302 itself
    tampered = raw.headers["Location"].replace("token=", "token=x")
    assert requests.get(tampered).status_code == 401


def test_old_versions_download_by_number(site, client, http, conf):
    page = site.create_page("ENG", "Notes")
    att = site.add_attachment(page.id, "notes.txt", data=b"version one")
    site.add_attachment(page.id, "notes.txt", data=b"version two, longer")
    url = f"{conf.url}/rest/api/content/{page.id}/child/attachment/{att.id}/download"
    assert http.get(url).content == b"version two, longer"
    assert http.get(url, params={"version": 1}).content == b"version one"
    assert http.get(url, params={"version": 9}).status_code == 404


def test_the_servlet_download_path_refuses_api_tokens_but_serves_a_pat(site, client, conf, http):
    page = site.create_page("ENG", "Pics")
    site.add_attachment(page.id, "photo.png", data=files.png())
    link = client.get_attachments_from_content(page.id)["results"][0]["_links"]["download"]
    refused = http.get(conf.url + link)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("OAuth realm=")
    served = requests.get(conf.url + link, headers={"Authorization": f"Bearer {conf.pat}"})
    assert served.status_code == 200 and served.content == files.png()


def test_langchain_loader_requests_answer_as_cloud_does(site, client, conf):
    """ConfluenceLoader(include_attachments=True) lists with get_attachments_from_content, reads
    metadata.mediaType and fetches base_url + _links.download with confluence.request(absolute=True): with
    an API token that is Cloud's 401; with a PAT (Data Center) the bytes."""
    page = site.create_page("ENG", "Handbook")
    site.add_attachment(page.id, "guide.docx", data=files.docx("wombat"))
    listed = client.get_attachments_from_content(page.id)["results"]
    assert [a["metadata"]["mediaType"] for a in listed] == [files.MEDIA_TYPES["docx"]]
    link = conf.url + listed[0]["_links"]["download"]
    with pytest.raises(requests.HTTPError) as refused:
        client.request(path=link, absolute=True)
    assert refused.value.response.status_code == 401
    with Confluence(conf.url, token=conf.pat) as pat_client:
        assert pat_client.request(path=link, absolute=True).content == files.docx("wombat")


def test_fault_rules_and_stats_name_both_download_legs(site, conf, http):
    page = site.create_page("ENG", "Flaky")
    att = site.add_attachment(page.id, "data.csv", data=b"a,b\r\n")
    conf.faults.add("GET /media/file/{fileId}/binary", status=503, times=1)
    url = f"{conf.url}/rest/api/content/{page.id}/child/attachment/{att.id}/download"
    assert http.get(url).status_code == 503  # the media store's proxy answers HTML, as Cloud's edge does
    assert http.get(url).content == b"a,b\r\n"
    assert conf.stats["GET /wiki/rest/api/content/{id}/child/attachment/{attachmentId}/download"] == 2
    assert conf.stats["GET /media/file/{fileId}/binary"] == 2


def test_trashed_attachments_are_404_unless_asked_for(site, client, http, conf):
    page = site.create_page("ENG", "Bin")
    att = site.add_attachment(page.id, "old.txt", data=b"o")
    site.trash_attachment(att.id)
    assert http.get(f"{conf.url}/rest/api/content/{att.id}").status_code == 404
    got = http.get(f"{conf.url}/rest/api/content/{att.id}", params={"status": "trashed"}).json()
    assert got["status"] == "trashed" and got["id"] == att.id


def test_upload_needs_the_xsrf_header_and_post_refuses_a_duplicate_name(site, conf, http):
    page = site.create_page("ENG", "Uploads")
    url = f"{conf.url}/rest/api/content/{page.id}/child/attachment"
    upload = {"file": ("a.txt", b"hello", "text/plain")}
    assert http.post(url, files=upload).status_code == 403  # XSRF check failed
    token = {"X-Atlassian-Token": "no-check"}
    created = http.post(url, files=upload, headers=token)
    assert created.status_code == 200 and created.json()["results"][0]["version"]["number"] == 1
    duplicate = http.post(url, files=upload, headers=token)
    assert duplicate.status_code == 400 and "same file name" in duplicate.json()["message"]
    put = http.put(url, files={"file": ("a.txt", b"hello again", "text/plain")}, headers=token)
    assert put.status_code == 200 and put.json()["results"][0]["version"]["number"] == 2


def test_v2_attachment_lists_page_by_cursor_and_single_get(site, conf, http):
    page = site.create_page("ENG", "Many")
    for i in range(5):
        site.add_attachment(page.id, f"f{i}.csv", data=files.csv_file([["n", i]]), when=f"2026-03-0{i + 1}T00:00:00Z")
    url = f"{conf.url}/api/v2/pages/{page.id}/attachments"
    seen, nxt = [], None
    while True:
        got = http.get(conf.url.removesuffix("/wiki") + nxt if nxt else url, params=None if nxt else {"limit": 2})
        data = got.json()
        seen += [a["title"] for a in data["results"]]
        nxt = data["_links"].get("next")
        if not nxt:
            break
        assert nxt.startswith("/wiki/api/v2/") and "cursor=" in nxt
    assert seen == [f"f{i}.csv" for i in range(5)]
    newest = http.get(url, params={"sort": "-created-date", "limit": 1}).json()["results"]
    assert [a["title"] for a in newest] == ["f4.csv"]
    one = http.get(f"{conf.url}/api/v2/attachments/{site.attachment_named(page.id, 'f0.csv').id}").json()
    assert one["pageId"] == page.id and one["mediaType"] == "text/csv" and one["version"]["number"] == 1
    assert one["downloadLink"].startswith(f"/download/attachments/{page.id}/f0.csv?version=1")
    assert set(one) >= {"fileId", "fileSize", "webuiLink", "mediaTypeDescription", "createdAt", "_links"}


def test_cql_finds_attachments_by_type_container_and_their_last_modified(site, client):
    page = site.create_page("ENG", "Holder")
    other = site.create_page("ENG", "Other")
    site.clock.set("2026-03-01T01:00:00Z")
    a = site.add_attachment(page.id, "a.pdf", data=files.pdf("a"))
    site.add_attachment(other.id, "b.pdf", data=files.pdf("b"))
    found = client.cql(f"type = attachment and container = {page.id}")["results"]
    assert [r["content"]["id"] for r in found] == [a.id]
    site.clock.set("2026-03-05T01:00:00Z")  # a new version moves the attachment's lastModified (10:00 KST)
    site.add_attachment(page.id, "a.pdf", data=files.pdf("a2"))
    recent = client.cql('type = attachment and lastModified >= "2026-03-05 10:00"', expand="content.container")
    assert [(r["content"]["id"], r["content"]["container"]["id"]) for r in recent["results"]] == [(a.id, page.id)]
    assert recent["results"][0]["lastModified"] == "2026-03-05T01:00:00.000Z"
    assert client.cql('type = page and lastModified >= "2026-03-05 10:00"')["results"] == []


def test_delete_trashes_then_purges_and_trashing_the_page_hides_its_attachments(site, client, conf, http):
    page = site.create_page("ENG", "Doomed")
    keep = site.add_attachment(page.id, "keep.txt", data=b"k")
    gone = site.add_attachment(page.id, "gone.txt", data=b"g")
    client.remove_content(gone.id)  # DELETE /rest/api/content/{id}: to the trash
    assert [a["title"] for a in client.get_attachments_from_content(page.id)["results"]] == ["keep.txt"]
    assert client.cql(f"type = attachment and container = {page.id}")["size"] == 1
    purge = http.delete(f"{conf.url}/rest/api/content/{gone.id}", params={"status": "trashed"})
    assert purge.status_code == 204 and gone.id not in site.attachments
    client.delete_attachment(page.id, "keep.txt")  # the client's legacy json/removeattachment.action
    assert client.get_attachments_from_content(page.id)["results"] == []
    again = site.add_attachment(page.id, "again.txt", data=b"a")
    download = f"{conf.url}/rest/api/content/{page.id}/child/attachment/{again.id}/download"
    location = http.get(download, allow_redirects=False).headers["Location"]
    site.trash_page(page.id)
    assert http.get(f"{conf.url}/api/v2/attachments/{again.id}").status_code == 404
    assert http.get(download).status_code == 404
    assert requests.get(location).status_code == 404  # even a token issued before
    assert client.cql("type = attachment")["results"] == []
    assert keep.id not in site.attachments


def test_a_restricted_page_hides_its_attachments_from_other_users(site, conf):
    page = site.create_page("ENG", "Secret")
    att = site.add_attachment(page.id, "secret.txt", data=b"s")
    outsider = site.add_user("Outsider", email="out@example.com", api_token="out-token")
    site.restrict_page(page.id, [site.default_user])
    with requests.Session() as s:
        s.auth = ("out@example.com", "out-token")
        assert s.get(f"{conf.url}/rest/api/content/{page.id}/child/attachment").status_code == 404
        assert s.get(f"{conf.url}/api/v2/attachments/{att.id}").status_code == 404
        assert s.get(f"{conf.url}/rest/api/content/{page.id}/child/attachment/{att.id}/download").status_code == 404
        assert s.get(f"{conf.url}/rest/api/content/search", params={"cql": "type = attachment"}).json()["size"] == 0
    assert not site.can_read(outsider, att) and site.can_read(site.default_user, att)


def test_a_2_gb_upload_streams_without_being_held(site, conf, http):
    page = site.create_page("ENG", "Huge")
    att = site.add_attachment(page.id, "huge.bin", data=GeneratedBlob(2 * GIB, "huge"))
    assert client_size(http, conf, page.id) == 2 * GIB
    url = f"{conf.url}/rest/api/content/{page.id}/child/attachment/{att.id}/download"
    before = _rss()
    with http.get(url, stream=True) as response:
        assert int(response.headers["Content-Length"]) == 2 * GIB
        got = 0
        for chunk in response.iter_content(1 << 20):
            got += len(chunk)
            if got >= 128 << 20:  # a client with a size limit stops early; the server must not choke
                break
    assert got >= 128 << 20
    assert _rss() - before < 64 << 20  # 128 MB went through this process (server and client) unheld
    assert threading.active_count() < 50
    assert http.get(f"{conf.url}/rest/api/content/{page.id}/child/attachment").status_code == 200  # still serving


def _rss() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def client_size(http, conf, page_id) -> int:
    return http.get(f"{conf.url}/rest/api/content/{page_id}/child/attachment").json()["results"][0]["extensions"][
        "fileSize"
    ]


def test_the_bad_file_matrix_attaches_and_downloads_byte_for_byte(site, conf, http):
    page = site.create_page("ENG", "Bad files")
    attached = attach_samples(site, page.id, files.bad_files(huge_size=3 << 20))
    assert sorted(s.problem for s in attached.values()) == sorted(
        ["encrypted", "corrupt", "zip bomb", "PDF bytes named .docx", "PNG bytes named .pdf", "image", "archive",
         "too large"]
    )
    for att_id, sample in attached.items():
        url = f"{conf.url}/rest/api/content/{page.id}/child/attachment/{att_id}/download"
        response = http.get(url)
        assert response.content == sample.blob.read(), sample.filename
        assert response.headers["Content-Type"] == sample.media_type  # as uploaded, whatever the bytes are


def test_corpus_attachments_are_deterministic_and_carry_their_phrases():
    a, b = Site(), Site()
    info_a = generate_corpus(a, seed=3, spaces=1, pages_per_space=20, attachment_files=12)
    info_b = generate_corpus(b, seed=3, spaces=1, pages_per_space=20, attachment_files=12)
    assert info_a.attachment_phrases == info_b.attachment_phrases and len(info_a.attachment_phrases) == 12
    kinds = {a.attachments[att_id].title.rsplit(".", 1)[-1] for att_id in info_a.attachment_phrases}
    assert kinds == set(files.GOOD_KINDS)
    for att_id, phrase in info_a.attachment_phrases.items():
        att = a.attachments[att_id]
        data = att.blob.read()
        assert data == b.attachments[att_id].blob.read()
        if att.title.endswith((".txt", ".md", ".html", ".csv")):
            assert phrase.encode() in data
        elif att.title.endswith(".pdf"):
            assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
        else:
            assert phrase in "".join(zipfile.ZipFile(io.BytesIO(data)).read(n).decode() for n in _xml_parts(data))
    plain = Site()
    assert generate_corpus(plain, seed=3, spaces=1, pages_per_space=20).attachment_phrases == {}


def _xml_parts(data: bytes) -> list[str]:
    return [n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.endswith(".xml") and "/" in n]


# --------------------------------------------------------------------------------------------- files

PHRASE = "quixotic marmalade telescope"


def test_good_files_are_genuinely_valid_pdf():
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(files.good_file("pdf", "doc", PHRASE, "word " * 900).blob.read()))
    assert len(reader.pages) >= 2 and PHRASE in "".join(p.extract_text() for p in reader.pages)
    locked = pypdf.PdfReader(io.BytesIO(files.encrypted_pdf(PHRASE)))
    assert locked.is_encrypted
    with pytest.raises(pypdf.errors.FileNotDecryptedError):
        locked.pages[0].extract_text()
    assert locked.decrypt("sandbox-secret") and PHRASE in locked.pages[0].extract_text()  # real RC4, not a flag
    with pytest.raises(pypdf.errors.PdfReadError):
        pypdf.PdfReader(io.BytesIO(files.truncated_pdf(PHRASE)), strict=True).pages[0].extract_text()


def test_good_files_are_genuinely_valid_docx():
    docx = pytest.importorskip("docx")
    document = docx.Document(io.BytesIO(files.good_file("docx", "d", PHRASE).blob.read()))
    assert PHRASE in [p.text for p in document.paragraphs]


def test_good_files_are_genuinely_valid_pptx():
    pptx = pytest.importorskip("pptx")
    deck = pptx.Presentation(io.BytesIO(files.good_file("pptx", "p", PHRASE).blob.read()))
    assert any(PHRASE in shape.text_frame.text for slide in deck.slides for shape in slide.shapes)
    assert len(deck.slides) == 2 and deck.slide_layouts[0].slide_master is not None


def test_good_files_are_genuinely_valid_xlsx():
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.load_workbook(io.BytesIO(files.good_file("xlsx", "x", PHRASE).blob.read()))
    assert PHRASE in [cell for row in book.active.values for cell in row]


def test_files_without_optional_readers():
    """What holds with the standard library alone: the PDF cross-reference offsets point at their objects,
    the zip packages are sound, the zip bomb really inflates past 1 GB, and the liars lie."""
    data = files.pdf(PHRASE)
    xref = int(data.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    rows = data[xref:].split(b"\n")[2:]
    for number, row in enumerate(rows[1:], start=1):
        if not row.endswith(b" n "):
            break
        assert data[int(row[:10]) :].startswith(b"%d 0 obj" % number)
    for kind in ("docx", "pptx", "xlsx"):
        archive = zipfile.ZipFile(io.BytesIO(files.good_file(kind, "f", PHRASE).blob.read()))
        assert archive.testzip() is None and "[Content_Types].xml" in archive.namelist()
    bomb = files.zip_bomb_docx()
    member = zipfile.ZipFile(io.BytesIO(bomb)).getinfo("word/document.xml")
    assert len(bomb) < 2 << 20 and member.file_size > 1 << 30
    bad = {f.filename: f for f in files.bad_files()}
    assert bad["liar.docx"].blob.read().startswith(b"%PDF") and bad["picture.pdf"].blob.read().startswith(b"\x89PNG")
    assert bad["huge.bin"].blob.size == 2 * GIB and b"/Encrypt" in bad["locked.pdf"].blob.read()
    assert files.markdown(PHRASE).startswith(b"# ") and b"<p>" + PHRASE.encode() in files.html(PHRASE)
    started = time.perf_counter()
    assert sum(len(c) for c in GeneratedBlob(64 << 20).chunks()) == 64 << 20
    assert time.perf_counter() - started < 5
