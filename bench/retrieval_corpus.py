"""The pages bench/retrieval_eval.py asks its questions about, loaded into a sandbox Site.

Three parts, one site:
- space HB, an employee handbook: 24 policy and how-to pages written out below, a few paragraphs each,
  the kind of page people ask about in their own words ("can I expense a taxi home after a late
  release?");
- space SVC, two pages per service (an overview and a runbook) for 20 services described by a table of
  facts (owner, language, data store, dependencies, alerts, rollback): pages that look alike on purpose,
  so a question about one service's rollback must beat the same section of 19 others and the same
  service's overview;
- the ten real sample pages (space QM, Korean product documentation), and the sandbox's generated
  corpus (2 spaces x 100 pages of seeded word salad) as distractors.

Questions live in bench/retrieval_questions.json; each names its answer page by space and title (or by
the sample's real page id).
"""

from __future__ import annotations

from html import escape

from confluence_assets.sandbox import Site, default_samples_dir, generate_corpus, load_samples

HANDBOOK: dict[str, dict[str, str]] = {
    "Expense policy": {
        "What you can claim": "Business costs you pay yourself are reimbursed: client meals up to 60 EUR per "
        "person, taxis when public transport is not running or after 22:00, conference fees approved by "
        "your manager, and books or courses under 200 EUR a year without approval.",
        "How to submit": "Photograph every receipt and file it in Spendly within 30 days. Claims are paid "
        "with the next salary run. Claims older than 90 days are rejected by finance.",
        "What is not covered": "Alcohol beyond a client dinner, fines, upgrades to business class and "
        "personal entertainment on trips are never reimbursed.",
    },
    "Business travel": {
        "Booking": "Book flights and hotels through TravelDesk at least 14 days ahead; economy class for "
        "flights under six hours, premium economy above that. Hotels are capped at 180 EUR a night, 250 EUR "
        "in London, New York and Tokyo.",
        "Per diem": "A daily allowance of 45 EUR covers meals on travel days; it replaces meal receipts.",
        "Safety": "Register every trip in TravelDesk so that the security team can reach you; the emergency "
        "line is printed on the back of your badge.",
    },
    "Parental leave": {
        "Entitlement": "Every parent, whatever their gender, gets 20 weeks of fully paid leave within the "
        "first year after a birth or adoption, taken in one block or in up to three parts.",
        "Telling us": "Tell your manager and People Ops at least eight weeks before the leave starts; People "
        "Ops files the paperwork for the statutory benefit.",
        "Coming back": "You may return part time (at least 60 percent) for up to six months at full pay.",
    },
    "Remote work": {
        "Where you can work": "Anyone may work from home up to four days a week. Working from another "
        "country is allowed for up to 30 days a year, after People Ops checked tax and visa rules.",
        "Home office budget": "A one-off budget of 800 EUR covers a desk, a chair and a monitor; order "
        "through the equipment portal.",
        "Core hours": "Be reachable between 10:00 and 15:00 in your team's time zone.",
    },
    "Vacation and public holidays": {
        "Days off": "Full-time staff get 28 days of paid vacation a year plus the public holidays of their "
        "office. Unused days carry over until the end of March of the next year, then they lapse.",
        "Booking time off": "Request leave in the HR portal; your manager approves it within three working "
        "days. Two weeks or more need four weeks' notice.",
        "Sick days": "If you are ill, tell your manager before 10:00. From the fourth day a doctor's note is required.",
    },
    "Laptop and equipment": {
        "Your laptop": "Engineers choose a 16-inch MacBook Pro or a ThinkPad X1 with Linux; everyone else "
        "gets a 14-inch MacBook Air. Laptops are replaced every three years.",
        "Lost or stolen devices": "Report a lost or stolen laptop or phone to the IT service desk within one "
        "hour, so it can be wiped remotely, and to the police for stolen devices.",
        "Leaving the company": "Return every device to IT on your last day; couriers are arranged for remote staff.",
    },
    "Password and MFA policy": {
        "Passwords": "Use the company password manager (Bitwarden) for every work account. Passwords are at "
        "least 14 characters and never reused. There is no forced periodic change.",
        "Multi-factor authentication": "Every account that supports it must use a hardware security key or "
        "an authenticator app; SMS codes are not allowed.",
        "If you think a password leaked": "Change it at once and report it in #security-help; the security "
        "team revokes active sessions.",
    },
    "VPN access": {
        "Who needs it": "Production databases, the admin consoles and the build servers are reachable only "
        "through the WireGuard VPN. Office Wi-Fi does not give access to them.",
        "Getting set up": "Request the VPN role in the access portal; once approved, download your profile "
        "from vpn.internal and import it in the WireGuard client.",
        "Troubleshooting": "If the tunnel connects but nothing loads, your profile has expired: profiles are "
        "valid for 90 days and are renewed from the same page.",
    },
    "Incident severity levels": {
        "SEV1": "Customer-facing outage or data loss for many customers. Page the incident commander at "
        "once; status page update within 15 minutes; all hands on deck.",
        "SEV2": "A major feature is broken or degraded for a subset of customers; response within 30 "
        "minutes during and outside business hours.",
        "SEV3": "Minor bug with a workaround; handled in business hours by the owning team.",
    },
    "Postmortem process": {
        "When": "Every SEV1 and SEV2 incident gets a written postmortem within five working days.",
        "Blameless": "Postmortems describe what the system and the process allowed, never who is to blame.",
        "Template": "Timeline, impact, root cause, what went well, what went badly, and action items with "
        "owners and due dates, tracked in Jira with the label postmortem-action.",
    },
    "Release process": {
        "Release train": "Services deploy continuously; the mobile apps ship every second Tuesday from the "
        "release branch cut on the Thursday before.",
        "Change freeze": "No production deploys from 20 December to 2 January and during Black Friday week "
        "unless the VP of Engineering approves an exception.",
        "Hotfixes": "A hotfix is branched from the release tag, reviewed by two engineers and deployed "
        "with the emergency pipeline.",
    },
    "Code review guidelines": {
        "Size": "Keep pull requests under 400 changed lines; split larger work behind a feature flag.",
        "Reviewers": "One approval is required, two for changes to payments, authentication or database "
        "migrations. Reviewers answer within one working day.",
        "Tone": "Comment on the code, not the person; label nitpicks as such.",
    },
    "On-call compensation": {
        "Rotation": "Each team runs a weekly on-call rotation from Monday 10:00 to Monday 10:00.",
        "Pay": "A week of on-call is paid a flat 350 EUR; every page outside working hours adds one hour "
        "of time off in lieu.",
        "Swapping shifts": "Swap shifts in PagerDuty and tell your team channel; no approval is needed.",
    },
    "Data retention policy": {
        "Customer data": "Customer records are deleted 30 days after an account is closed; backups age out "
        "after 35 days.",
        "Logs": "Application logs are kept for 14 days, audit logs for seven years.",
        "Deletion requests": "A customer's request to delete their personal data is handled by the privacy "
        "team within 30 days.",
    },
    "Requesting access to systems": {
        "How": "Every access (a database, a cloud account, an admin console) is requested in the access "
        "portal with a reason; the system owner approves it.",
        "How long": "Production access expires after 12 hours; read-only analytics access after 90 days.",
        "Reviews": "Managers confirm their reports' access every quarter; unconfirmed access is removed.",
    },
    "Reporting a security vulnerability": {
        "Internal reports": "If you find a vulnerability in our product, write to security@ or post in "
        "#security-help; do not open a public issue.",
        "Bug bounty": "External researchers report through the bug bounty programme; rewards range from "
        "100 to 10,000 EUR by severity.",
        "Phishing": "Forward suspicious e-mail as an attachment to phishing@; never click its links.",
    },
    "Hiring and interviews": {
        "Stages": "A recruiter screen, a take-home or live technical exercise, a system design interview for "
        "senior roles, and a values interview with someone outside the team.",
        "Referrals": "A referred candidate who is hired earns the referrer a 2,000 EUR bonus after their probation.",
        "Feedback": "Interviewers submit written feedback in the applicant tracker within 24 hours.",
    },
    "Performance reviews": {
        "Cycle": "Reviews happen twice a year, in March and September, with a self-review, peer feedback "
        "and a conversation with your manager.",
        "Promotions": "Promotions are decided in calibration after each cycle; a promotion case is written "
        "by your manager with your input.",
        "Salary": "Salary bands are published internally; raises take effect on 1 April.",
    },
    "Office access and badges": {
        "Badges": "Your badge opens the office from 07:00 to 21:00 on working days. Weekend access is "
        "requested from facilities.",
        "Guests": "Register visitors at reception the day before; they must be accompanied at all times.",
        "Lost badge": "Report a lost badge to facilities at once; a replacement costs nothing the first time.",
    },
    "Git branching model": {
        "Main branch": "main is always deployable; every change reaches it through a pull request that passed CI.",
        "Branch names": "Name branches type/JIRA-KEY-short-description, e.g. fix/PAY-1423-rounding.",
        "Merging": "Squash merge by default; rebase on main before merging when CI is older than a day.",
    },
    "Feature flags": {
        "Tooling": "Flags live in FlagHouse; every flag has an owner and an expiry date.",
        "Rollout": "Roll out to internal users first, then 5, 25 and 100 percent of customers, watching "
        "error rates at each step.",
        "Cleanup": "Remove a flag within 30 days of reaching 100 percent; stale flags are reported weekly.",
    },
    "API versioning": {
        "Versions": "Public APIs are versioned in the URL (/v1, /v2). A version is supported for at least "
        "18 months after its successor is released.",
        "Breaking changes": "Removing a field, renaming it or changing its type needs a new version; adding "
        "an optional field does not.",
        "Deprecation": "Deprecated endpoints answer with a Sunset header and are announced in the developer "
        "newsletter six months ahead.",
    },
    "Logging standards": {
        "Format": "Services log structured JSON with timestamp, level, service, trace_id and message.",
        "Personal data": "Never log passwords, tokens, card numbers or full e-mail addresses; mask them.",
        "Levels": "ERROR means a human should look; WARN is unusual but handled; INFO for state changes.",
    },
    "Cloud cost budgets": {
        "Budgets": "Every team has a monthly cloud budget; finance sends an alert at 80 percent and the "
        "team lead must explain an overrun above 110 percent.",
        "Tagging": "Every cloud resource carries the tags team, service and environment; untagged "
        "resources are stopped after seven days.",
        "Savings": "Non-production environments shut down at night and on weekends by default.",
    },
}

# name, purpose, team, language, store, dependencies, alert, rollback
SERVICES: list[tuple[str, str, str, str, str, str, str, str]] = [
    ("ledger", "keeps the double-entry accounts of every customer wallet", "Payments", "Java", "PostgreSQL",
     "fx-rates, identity", "LedgerImbalanceDetected", "redeploy the previous image tag with Argo CD"),
    ("checkout", "turns a basket into an order and takes the payment", "Commerce", "Kotlin", "MySQL",
     "ledger, inventory, fraud-score", "CheckoutErrorRateHigh", "flip the checkout-v2 flag off in FlagHouse"),
    ("inventory", "tracks stock per warehouse and reserves items for orders", "Fulfilment", "Go", "Cassandra",
     "warehouse-sync", "ReservationLagHigh", "helm rollback to the previous revision"),
    ("identity", "signs users in and issues their session tokens", "Platform", "Go", "PostgreSQL and Redis",
     "none", "LoginLatencyP99High", "redeploy the previous image tag with Argo CD"),
    ("notifier", "sends e-mails, push notifications and SMS", "Engagement", "Python", "DynamoDB",
     "identity, templates", "NotificationQueueBacklog", "helm rollback to the previous revision"),
    ("search-api", "answers product search queries for the shop", "Discovery", "Rust", "OpenSearch",
     "catalog", "SearchNoResultsSpike", "switch traffic back to the blue deployment"),
    ("catalog", "stores product descriptions, images and prices", "Discovery", "TypeScript", "MongoDB",
     "media-store", "CatalogSyncFailed", "redeploy the previous image tag with Argo CD"),
    ("fraud-score", "scores every payment for fraud risk in real time", "Risk", "Python", "Redis",
     "ledger", "FraudModelTimeouts", "pin the previous model version in the model registry"),
    ("fx-rates", "fetches and caches currency exchange rates", "Payments", "Go", "Redis",
     "an external rates provider", "RatesStale", "helm rollback to the previous revision"),
    ("warehouse-sync", "exchanges stock and shipment files with warehouse partners", "Fulfilment", "Java",
     "PostgreSQL", "SFTP partners", "PartnerFileRejected", "re-run the last good batch from the archive bucket"),
    ("media-store", "stores and resizes product images", "Discovery", "Go", "S3", "none",
     "ImageResizeErrors", "redeploy the previous image tag with Argo CD"),
    ("reporting", "builds the daily sales and finance reports", "Data", "Python", "BigQuery",
     "ledger, checkout", "ReportJobLate", "re-run yesterday's Airflow DAG from the failed task"),
    ("billing", "issues monthly invoices to business customers", "Payments", "Java", "PostgreSQL",
     "ledger, tax-engine", "InvoiceRunFailed", "redeploy the previous image tag with Argo CD"),
    ("tax-engine", "computes sales tax and VAT for every order line", "Payments", "Kotlin", "PostgreSQL",
     "none", "TaxRuleMismatch", "restore the previous tax rules snapshot"),
    ("shipping", "books carriers and prints shipping labels", "Fulfilment", "TypeScript", "MySQL",
     "carrier APIs", "LabelPrintFailures", "helm rollback to the previous revision"),
    ("reviews", "collects and moderates product reviews", "Engagement", "Ruby", "PostgreSQL",
     "catalog, identity", "ModerationQueueStuck", "redeploy the previous image tag with Argo CD"),
    ("recommendations", "suggests products on the home page and in the basket", "Discovery", "Python",
     "Feature store on Redis", "catalog", "RecoFallbackRateHigh",
     "pin the previous model version in the model registry"),
    ("support-desk", "routes customer tickets to support agents", "Customer Care", "TypeScript", "PostgreSQL",
     "identity, notifier", "TicketAssignmentDelayed", "helm rollback to the previous revision"),
    ("feature-flags", "serves FlagHouse flag evaluations to every service", "Platform", "Go", "etcd", "none",
     "FlagEvaluationErrors", "switch traffic back to the blue deployment"),
    ("audit-log", "records who changed what in the admin tools", "Security", "Rust", "ClickHouse", "identity",
     "AuditIngestDropped", "redeploy the previous image tag with Argo CD"),
]  # fmt: skip


def _xhtml(sections: dict[str, str]) -> str:
    return "".join(f"<h2>{escape(h)}</h2><p>{escape(t)}</p>" for h, t in sections.items())


def service_pages(service: tuple[str, ...]) -> dict[str, dict[str, str]]:
    name, purpose, team, language, store, deps, alert, rollback = service
    overview = {
        "What it does": f"The {name} service {purpose}. It is owned by the {team} team; questions go to "
        f"#team-{team.lower().replace(' ', '-')}.",
        "Architecture": f"{name} is written in {language} and keeps its data in {store}. It runs as three "
        f"replicas per region on Kubernetes behind the internal gateway.",
        "Dependencies": f"{name} calls {deps}. When a dependency is down, {name} degrades instead of failing "
        "every request.",
    }
    runbook = {
        "Alerts": f"The main alert is {alert}. It pages the {team} on-call engineer through PagerDuty.",
        "Restarting": f"Restart {name} with a rolling restart of its deployment; never delete all pods at once.",
        "Rolling back a bad release": f"To undo a bad release of {name}, {rollback}, then watch the error "
        "rate on its Grafana dashboard for ten minutes.",
        "Escalation": f"If the on-call engineer cannot fix it within 30 minutes, escalate to the {team} "
        "engineering manager and open an incident.",
    }
    return {f"{name} service overview": overview, f"{name} runbook": runbook}


def build_site(*, distractors: bool = True) -> Site:
    site = Site(timezone="Asia/Seoul")
    site.add_space("HB", "Employee Handbook")
    for title, sections in HANDBOOK.items():
        site.create_page("HB", title, _xhtml(sections))
    site.add_space("SVC", "Services")
    for service in SERVICES:
        for title, sections in service_pages(service).items():
            site.create_page("SVC", title, _xhtml(sections))
    load_samples(site, "QM", default_samples_dir())
    if distractors:
        generate_corpus(site, seed=7, spaces=2, pages_per_space=100)
    return site
