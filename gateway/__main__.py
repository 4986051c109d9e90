"""The ``gateway`` command: serve, work, watch-payments, db, keys, kyc, transfers, payments,
outbox, webhooks, operators, disbursements, payouts, disburse, channels, accounts, config,
horizon, sandbox."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from stellar_sdk import Keypair

if TYPE_CHECKING:
    from gateway.app import Services
    from gateway.db.uow import UnitOfWork
    from gateway.deps import Deps

from gateway.settings import (
    CONFIG_ENV,
    PUBLIC_PASSPHRASE,
    ConfigError,
    Settings,
    env_name,
    load_settings,
    missing_testnet_secrets,
    with_generated_secrets,
)

T = TypeVar("T")


def _fail(lines: Sequence[str], code: int = 2) -> int:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    return code


def _load(args: argparse.Namespace, *, check_secrets: bool = True) -> Settings:
    return load_settings(args.config, os.environ, check_secrets=check_secrets)


async def _database_state(settings: Settings) -> tuple[str | None, str | None]:
    """(problem, schema note): a database that cannot be opened is a problem; a schema that
    is behind is a note here and a refusal in ``serve``."""
    from gateway.db.migrate import schema_status
    from gateway.deps import build_engine

    engine = build_engine(settings)
    try:
        status = await schema_status(engine)
    except Exception as exc:
        return f"database.url: cannot open the database ({type(exc).__name__})", None
    finally:
        await engine.dispose()
    if not status.is_current:
        return None, (
            f"database.url: schema is at {status.current or 'nothing'}, this code needs "
            f"{status.head}; run `gateway db upgrade`"
        )
    return None, None


async def _horizon_state(
    settings: Settings, wait_seconds: float = 3.0
) -> tuple[str | None, str | None]:
    """(problem, note): Horizon on another network is a problem (SEP-10 would read a
    missing account as a new one); an unreachable Horizon is a note."""
    import httpx

    from gateway.errors import GatewayError
    from gateway.outbound.horizon import HttpxHorizon
    from gateway.settings import url_host

    where = url_host(settings.horizon.url)
    try:
        async with httpx.AsyncClient(base_url=settings.horizon.url, timeout=wait_seconds) as client:
            state = await HttpxHorizon(client).ledger_state()
    except GatewayError as exc:
        return None, f"horizon.url: Horizon at {where} does not answer now ({exc.message})"
    if state.network_passphrase not in (None, settings.network_passphrase):
        return (
            f"horizon.url: Horizon at {where} serves {state.network_passphrase!r}, not "
            f"network_passphrase {settings.network_passphrase!r}"
        ), None
    return None, None


async def _check_wiring(settings: Settings) -> None:
    """Build the whole app once (stellar.toml rendering included) and throw it away."""
    from gateway.app import create_app
    from gateway.deps import build_deps

    deps = build_deps(settings)
    try:
        create_app(settings, deps)
    finally:
        await deps.aclose()


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging

    configure_logging(args.log_level)
    try:
        settings = _load(args)
        settings, generated = with_generated_secrets(settings)
        asyncio.run(_check_wiring(settings))
    except ConfigError as exc:
        return _fail(exc.problems)
    problem, behind = asyncio.run(_database_state(settings))
    if problem or behind:
        return _fail([problem or behind or ""])
    problem, note = asyncio.run(_horizon_state(settings))
    if problem:
        return _fail([problem])
    if note:
        print(f"warning: {note}; SEP-10 answers 503 for it until it does", file=sys.stderr)
    if generated:
        banner = "!" * 78
        print(banner, file=sys.stderr)
        print(
            f"WARNING: {', '.join(generated)} not set: generated throwaway testnet values.\n"
            f"  SIGNING_KEY for this run: {settings.signing_keypair.public_key}\n"
            "  Tokens and challenges will not survive a restart. Set them to keep them.",
            file=sys.stderr,
        )
        print(banner, file=sys.stderr)
        os.environ.update(generated)  # workers inherit the same values
    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    os.environ.setdefault("GATEWAY_LOG_LEVEL", args.log_level)
    from gateway.serving import serve

    return serve(args.host, args.port, args.workers, access_log=settings.server.access_log)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from gateway.db.migrate import schema_status, upgrade
    from gateway.deps import build_engine

    try:
        settings = _load(args, check_secrets=False)
    except ConfigError as exc:
        return _fail(exc.problems)

    async def run() -> str:
        engine = build_engine(settings)
        try:
            await upgrade(engine)
            status = await schema_status(engine)
        finally:
            await engine.dispose()
        return status.head

    try:
        head = asyncio.run(run())
    except Exception as exc:
        return _fail([f"database.url: upgrade failed ({type(exc).__name__}: {exc})"])
    print(f"database schema is at {head} (current)")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    try:
        settings = _load(args, check_secrets=False)
    except ConfigError as exc:
        return _fail(exc.problems)
    problem, behind = asyncio.run(_database_state(settings))
    if problem or behind:
        return _fail([problem or behind or ""], code=1)
    print("database schema is current")
    return 0


def cmd_keys_generate(_args: argparse.Namespace) -> int:
    kp = Keypair.random()
    print(f"SIGNING_KEY={kp.public_key}")
    print(f"{env_name(('signing_secret',))}={kp.secret}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        settings = _load(args)
        generated = missing_testnet_secrets(settings)
        asyncio.run(_check_wiring(with_generated_secrets(settings, persist=False)[0]))
    except ConfigError as exc:
        return _fail(exc.problems)
    db_problem, db_note = asyncio.run(_database_state(settings))
    horizon_problem, horizon_note = asyncio.run(_horizon_state(settings))
    problems = [p for p in (db_problem, horizon_problem) if p]
    if problems:
        return _fail(problems)
    print(
        f"config OK: network={settings.network} home_domain={settings.home_domain} "
        f"base_url={settings.base_url} assets={','.join(a.code for a in settings.assets) or '-'}"
    )
    if generated:
        print(f"note: {', '.join(generated)} not set; a testnet server generates them at start")
    for note in (db_note, horizon_note):
        if note:
            print(f"note: {note}")
    return 0


@contextlib.asynccontextmanager
async def _services(settings: Settings) -> AsyncIterator[tuple[Deps, Services]]:
    """The app's services without HTTP, for commands and workers."""
    from gateway.app import build_services
    from gateway.deps import build_deps

    deps = build_deps(settings)
    try:
        yield deps, build_services(settings, deps)
    finally:
        await deps.aclose()


class CommandFailed(Exception):
    """Ends a command with these lines on stderr and this exit code."""

    def __init__(self, lines: Sequence[str], code: int = 1):
        super().__init__("; ".join(lines))
        self.lines = list(lines)
        self.code = code


def _with_services(args: argparse.Namespace, job: Callable[[Deps, Services], Awaitable[T]]) -> T:
    """Run ``job`` with the app's services: a bad config ends the command with exit 2, an
    action the gateway refuses (its error message) with exit 1."""
    from gateway.errors import GatewayError

    try:
        settings = _load_for_work(args)
    except ConfigError as exc:
        raise CommandFailed(exc.problems, code=2) from None

    async def run() -> T:
        async with _services(settings) as (deps, services):
            return await job(deps, services)

    try:
        return asyncio.run(run())
    except GatewayError as exc:  # with every problem it lists (a refused file's rows)
        raise CommandFailed([exc.message, *exc.extra.get("problems", ())]) from None


def _with_database(
    args: argparse.Namespace,
    job: Callable[[UnitOfWork], Awaitable[T]],
    *,
    read_only: bool = True,
) -> T:
    """Run ``job`` in one unit of work on the configured database, and nothing else: no
    secrets are needed (a read, or an outbox redelivery, on a mainnet host). A bad config
    ends the command with exit 2."""
    from gateway.db.uow import UnitOfWorkFactory
    from gateway.deps import build_engine

    try:
        settings = _load(args, check_secrets=False)
    except ConfigError as exc:
        raise CommandFailed(exc.problems, code=2) from None

    async def run() -> T:
        engine = build_engine(settings)
        try:
            async with UnitOfWorkFactory(engine)(read_only=read_only) as uow:
                result = await job(uow)
                if not read_only:
                    await uow.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _print_rows(
    args: argparse.Namespace, read: Callable[[UnitOfWork], Awaitable[list[dict[str, Any]]]]
) -> int:
    """Rows an operator lists, one JSON line each."""
    _print_json_lines(_with_database(args, read))
    return 0


def _print_json_lines(rows: Iterable[dict[str, Any]]) -> None:
    for row in rows:
        print(json.dumps(row, default=str))


def _load_for_work(args: argparse.Namespace) -> Settings:
    settings, generated = with_generated_secrets(_load(args))
    os.environ.update(generated)
    return settings


def cmd_work(args: argparse.Namespace) -> int:
    """Background work without HTTP: outbox delivery, KYC reviews, sweeps."""
    from gateway.app import background_steps
    from gateway.logs import configure_logging
    from gateway.workers import run_forever

    configure_logging(args.log_level)
    try:
        settings = _load_for_work(args)
    except ConfigError as exc:
        return _fail(exc.problems)
    settings = dataclasses.replace(
        settings, outbox=dataclasses.replace(settings.outbox, run_in_server=True)
    )

    async def run() -> None:
        async with _services(settings) as (deps, services):
            steps = background_steps(settings, deps, services)
            if args.once:
                for _, step, _ in steps:
                    await step()
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await asyncio.gather(*(run_forever(n, s, interval=i, stop=stop) for n, s, i in steps))

    asyncio.run(run())
    return 0


def cmd_watch_payments(args: argparse.Namespace) -> int:
    """The SEP-31 payment watcher (and expiry of unpaid transfers) without HTTP."""
    from gateway.app import payment_steps
    from gateway.logs import configure_logging
    from gateway.workers import run_forever

    configure_logging(args.log_level)
    try:
        settings = _load_for_work(args)
    except ConfigError as exc:
        return _fail(exc.problems)
    if not (settings.seps.sep31 or settings.seps.sep3):
        return _fail(["seps: SEP-31 and SEP-3 are switched off; there is nothing to watch"])

    async def run() -> None:
        async with _services(settings) as (_, services):
            steps = payment_steps(services)
            if args.once:
                watch, expire = steps[0][1], steps[1][1]
                while await watch():
                    pass
                await expire()
                lag = await services.watcher.lag()
                print(f"caught up on {lag.account}; last payment at {lag.last_payment_at}")
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await asyncio.gather(*(run_forever(n, s, interval=i, stop=stop) for n, s, i in steps))

    try:
        asyncio.run(run())
    except Exception as exc:  # one clear line: Horizon unreachable, database down, ...
        return _fail([f"payment watcher stopped: {exc}"], code=1)
    return 0


def _transfer_view(t: Any) -> dict[str, Any]:
    """A transfer for operators: state and amounts, no personal data."""
    from gateway.sep31.service import render_for_operators

    return render_for_operators(t)


def cmd_transfers_list(args: argparse.Namespace) -> int:
    async def job(deps: Deps, _: Services) -> list[Any]:
        async with deps.uow(read_only=True) as uow:
            return await uow.transfers.list(args.status, args.limit)

    for t in _with_services(args, job):
        print(json.dumps(_transfer_view(t), default=str))
    return 0


def cmd_transfers_show(args: argparse.Namespace) -> int:
    async def job(deps: Deps, services: Services) -> dict[str, Any]:
        async with deps.uow(read_only=True) as uow:
            t = await uow.transfers.get(args.transfer_id)
            if t is None:
                raise CommandFailed(["transfer not found"])
            shown = {
                **_transfer_view(t),
                "events": await uow.transfers.events(t.id),
                "payouts": await uow.payouts.of("sep31", t.id),
            }
        if args.sent_info:
            shown["sent_info"] = await services.transfers.sent_info(t.id)
        return shown

    print(json.dumps(_with_services(args, job), indent=2, default=str))
    return 0


def cmd_transfers_act(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {}
    for item in args.field or ():
        name, _, description = item.partition("=")
        if not name or not description:
            raise CommandFailed([f"--field {item!r}: write it as name=description"], code=2)
        # need_customer_info: the receiver's field and why; need_transaction_info: the
        # transaction field and its description.
        fields[name] = (
            description if args.action == "need_customer_info" else {"description": description}
        )
    if args.action in ("need_customer_info", "need_transaction_info") and not fields:
        raise CommandFailed([f"{args.action}: name the fields with --field name=text"], code=2)

    async def job(_: Deps, services: Services) -> Any:
        return await services.transfers.operate(
            args.transfer_id, args.action, f"operator:{args.operator}", args.reason, fields or None
        )

    t = _with_services(args, job)
    note = f" ({t.hold_reason})" if t.hold_reason else ""
    print(f"transfer {t.id} is {t.status}{note}")
    return 0


def cmd_payments_list(args: argparse.Namespace) -> int:
    return _print_rows(args, lambda uow: uow.payments.list(args.outcome, args.limit))


def cmd_payments_refund(args: argparse.Namespace) -> int:
    async def job(_: Deps, services: Services) -> dict[str, Any]:
        return await services.transfers.refund_payment(
            args.payment_id, f"operator:{args.operator}", args.reason
        )

    row = _with_services(args, job)
    print(f"payment {row['id']}: {row['resolution']}")
    return 0


def _federation_line(record: Any) -> str:
    return (
        f"{record.stellar_address} -> {record.account_id} memo {record.memo} "
        f"(customer {record.customer_id})"
    )


def cmd_federation_add(args: argparse.Namespace) -> int:
    async def job(_: Deps, services: Services) -> Any:
        return await services.federation.register(args.name, args.customer_id)

    print(_federation_line(_with_services(args, job)))
    return 0


def cmd_federation_list(args: argparse.Namespace) -> int:
    async def job(_: Deps, services: Services) -> list[Any]:
        return await services.federation.list(args.limit)

    for record in _with_services(args, job):
        print(_federation_line(record))
    return 0


def cmd_federation_remove(args: argparse.Namespace) -> int:
    async def job(_: Deps, services: Services) -> None:
        await services.federation.remove(args.name)

    _with_services(args, job)
    print(f"removed {args.name.lower()}")
    return 0


def cmd_compliance_list(args: argparse.Namespace) -> int:
    return _print_rows(args, lambda uow: uow.compliance.list(args.status, args.limit))


def cmd_compliance_decide(args: argparse.Namespace) -> int:
    async def job(_: Deps, services: Services) -> dict[str, Any]:
        return await services.compliance.decide(
            args.id,
            tx=args.tx,
            info=args.info,
            operator=f"operator:{args.operator}",
            reason=args.reason,
        )

    row = _with_services(args, job)
    print(f"compliance request {row['id']}: tx {row['tx_status']}, info {row['info_status']}")
    return 0


def cmd_compliance_send(args: argparse.Namespace) -> int:
    from decimal import Decimal, InvalidOperation

    code, _, issuer = args.asset.partition(":")
    try:
        amount = Decimal(args.amount)
    except InvalidOperation:
        raise CommandFailed(["amount: must be a decimal number"], code=2) from None

    async def job(_: Deps, services: Services) -> dict[str, Any]:
        return await services.sender.send(
            receiver=args.to,
            amount=amount,
            asset_code=code,
            asset_issuer=issuer,
            customer_id=args.customer,
            source_account=args.source,
            need_info=args.need_info,
            request_key=args.key,
        )

    row = _with_services(args, job)
    reason = f" ({row['reason']})" if row.get("reason") else ""
    print(f"compliance request {row['id']} to {row['receiver']}: {row['status']}{reason}")
    return 0 if row["status"] in ("ok", "pending", "sending") else 1


def cmd_compliance_sent(args: argparse.Namespace) -> int:
    return _print_rows(args, lambda uow: uow.outgoing.list(args.limit))


def cmd_compliance_allow(args: argparse.Namespace) -> int:
    async def job(_: Deps, services: Services) -> None:
        if args.remove:
            await services.compliance.disallow(args.customer, args.domain)
        else:
            await services.compliance.allow(args.customer, args.domain, f"operator:{args.operator}")

    _with_services(args, job)
    verb = "may no longer" if args.remove else "may"
    print(f"{args.domain.lower()} {verb} receive the data of customer {args.customer}")
    return 0


def cmd_disbursements_upload(args: argparse.Namespace) -> int:
    try:
        content = Path(args.file).read_bytes()
    except OSError as exc:
        raise CommandFailed([f"{args.file}: {exc.strerror}"], code=2) from None

    async def job(_: Deps, services: Services) -> dict[str, Any]:
        return await services.disbursements.upload(
            content, name=args.name, uploaded_by=f"operator:{args.operator}"
        )

    row = _with_services(args, job)
    print(
        f"disbursement {row['id']} ({row['status']}): {row['payments']} payments, "
        f"totals in stroops {row['total']}"
    )
    return 0


def cmd_disbursements_list(args: argparse.Namespace) -> int:
    return _print_rows(args, lambda uow: uow.disbursements.recent(args.limit))


def cmd_disbursements_show(args: argparse.Namespace) -> int:
    async def job(_: Deps, services: Services) -> dict[str, Any]:
        return await services.disbursements.show(args.id, args.limit)

    print(json.dumps(_with_services(args, job), indent=2, default=str))
    return 0


def cmd_accounts_status(args: argparse.Namespace) -> int:
    async def job(_: Deps, services: Services) -> dict[str, Any]:
        return await services.disbursements.check_balances()

    status = _with_services(args, job)
    print(f"distribution account {status['account']}")
    for code, amounts in status["assets"].items():
        print(
            f"  {code}: balance {amounts['balance']}, promised {amounts['promised']}, "
            f"available {amounts['available']}"
        )
    for warning in status["warnings"]:
        print(f"warning: {warning}")
    return 1 if status["warnings"] else 0


def _distribution_keys(settings: Settings) -> Any:
    s = settings.disbursement
    if s.distribution_secret is None:
        raise CommandFailed(
            ["disbursement.distribution_secret: set GATEWAY_DISBURSEMENT_DISTRIBUTION_SECRET"],
            code=2,
        )
    return Keypair.from_secret(s.distribution_secret.reveal())


def _channels(deps: Deps, settings: Settings) -> Any:
    from gateway.disbursement.channels import Channels

    return Channels(
        settings, uow=deps.uow, horizon=deps.horizon, distribution=_distribution_keys(settings)
    )


def _lane_line(lane: dict[str, Any]) -> str:
    kind = "distribution" if lane["idx"] is None else f"channel {lane['idx']}"
    busy = f", sending {lane['open_tx']}" if lane["open_tx"] else ""
    note = f" ({lane['note']})" if lane.get("note") else ""
    return f"{lane['account_id']} {kind}: {lane['status']}{note}, sequence {lane['sequence']}{busy}"


def cmd_channels(args: argparse.Namespace) -> int:
    async def job(deps: Deps, services: Services) -> Any:
        channels = _channels(deps, services.settings)
        if args.channels == "create":
            return await channels.create(args.count)
        if args.channels == "verify":
            return await channels.verify()
        if args.channels == "delete":
            return await channels.delete()
        return await channels.lanes()

    found = _with_services(args, job)
    if args.channels == "delete":
        print(f"{len(found)} channel account(s) merged back into the distribution account")
        return 0
    problems = 0
    for lane in found:
        print(_lane_line(lane))
        for problem in lane.get("problems", ()):
            problems += 1
            print(f"  problem: {problem}")
    return 1 if problems else 0


def cmd_disburse(args: argparse.Namespace) -> int:
    """The payout submitter: ready payouts to the network, results to their sources."""
    from gateway.disbursement.submitter import Submitter
    from gateway.logs import configure_logging
    from gateway.workers import run_forever

    configure_logging(args.log_level)

    async def job(deps: Deps, services: Services) -> None:
        submitter = Submitter(
            services.settings,
            uow=deps.uow,
            horizon=deps.horizon,
            distribution=_distribution_keys(services.settings),
            results=services.payout_results,
            lease_seconds=args.lease_seconds,
        )
        await submitter.ensure_lane()
        if args.once:
            while await submitter.step():
                pass
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        async def check_balances() -> bool:
            await services.disbursements.check_balances()
            return False

        await asyncio.gather(
            *(
                run_forever(f"disburse-{i}", submitter.step, interval=args.interval, stop=stop)
                for i in range(args.concurrency)
            ),
            run_forever(
                "balances",
                check_balances,
                interval=services.settings.disbursement.balance_check_seconds,
                stop=stop,
            ),
        )

    _with_services(args, job)
    return 0


def cmd_accounts_plan_topup(args: argparse.Namespace) -> int:
    import re
    from datetime import timedelta

    match = re.fullmatch(r"(\d{1,4})([hd])", args.period)
    if match is None:
        raise CommandFailed(["--for: a period such as 24h or 7d"], code=2)
    hours = int(match[1]) * (24 if match[2] == "d" else 1)

    async def job(_: Deps, services: Services) -> dict[str, Any]:
        return await services.disbursements.plan_topup(timedelta(hours=hours))

    plan = _with_services(args, job)
    for code, amount in plan["plan"].items():
        print(f"{code}: {amount}")
    print(plan["xdr"] or plan["note"])
    return 0


def cmd_disbursements_act(args: argparse.Namespace) -> int:
    async def job(_: Deps, services: Services) -> dict[str, Any]:
        return await services.disbursements.act(
            args.id, args.action, f"operator:{args.operator}", args.reason
        )

    row = _with_services(args, job)
    approvals = len(json.loads(row["approvers"]))
    line = (
        f"disbursement {row['id']}: {row['status']} "
        f"({approvals} of {row['approvals_needed']} approvals)"
    )
    if row["retry_by"]:
        retry_approvals = len(json.loads(row["retry_approvers"] or "[]"))
        line += f"; retry awaiting approval ({retry_approvals} of {row['approvals_needed']})"
    print(line)
    return 0


def cmd_operators(args: argparse.Namespace) -> int:
    from datetime import timedelta

    async def job(_: Deps, services: Services) -> Any:
        operators = services.operators
        if args.operators == "create":
            days = args.expires_in_days
            return await operators.create(
                args.name,
                args.role,
                created_by="cli",
                expires_in=timedelta(days=days) if days else None,
            )
        if args.operators == "revoke":
            return await operators.revoke(args.id, by="cli")
        return await operators.listing(args.limit)

    found = _with_services(args, job)
    if args.operators == "create":
        row, key = found
        print(f"operator {row['id']} ({row['name']}, {row['role']})")
        print(f"key (shown once; keep it secret): {key}")
    elif args.operators == "revoke":
        print(f"operator {found['id']} ({found['name']}) revoked")
    else:
        _print_json_lines(found)
    return 0


def cmd_webhooks(args: argparse.Namespace) -> int:
    async def job(_: Deps, services: Services) -> Any:
        webhooks = services.webhooks
        if args.webhooks == "add":
            return await webhooks.register(args.url, args.events, actor="cli")
        if args.webhooks == "disable":
            return await webhooks.disable(args.id, actor="cli")
        return await webhooks.listing(args.limit)

    found = _with_services(args, job)
    if args.webhooks == "add":
        row, secret = found
        print(f"webhook endpoint {row['id']} for {', '.join(row['events'])}")
        print(f"signing secret (shown once; keep it secret): {secret}")
    elif args.webhooks == "disable":
        print(f"webhook endpoint {found['id']} disabled")
    else:
        _print_json_lines(found)
    return 0


def cmd_payouts_send(args: argparse.Namespace) -> int:
    async def job(_: Deps, services: Services) -> dict[str, Any]:
        return await services.disbursements.direct(
            asset_code=args.asset,
            amount=args.amount,
            destination=args.to,
            memo=args.memo or "",
            external_payment_id=args.external_id,
            reference=args.reference,
            requested_by=f"operator:{args.operator}",
        )

    row = _with_services(args, job)
    needed = row["approvals_needed"]
    print(
        f"direct payout {row['id']}: {row['status']}"
        + (f" (awaiting {needed} approval(s))" if row["status"] == "ready" else "")
    )
    return 0


def cmd_kyc_decide(args: argparse.Namespace) -> int:
    async def job(_: Deps, services: Services) -> Any:
        return await services.customers.decide(
            args.customer_id, args.type, args.status, args.reason, actor="operator:cli"
        )

    status = _with_services(args, job)
    print(f"customer {args.customer_id} is {status} for {args.type}")
    return 0


def cmd_kyc_show(args: argparse.Namespace) -> int:
    async def job(deps: Deps, _: Services) -> dict[str, Any]:
        async with deps.uow(read_only=True) as uow:
            customer = await uow.customers.get(args.customer_id)
            if customer is None:
                raise CommandFailed(["customer not found"])
            statuses = await uow.customers.type_statuses(customer.id)
            fields = await uow.customers.fields(customer.id)
            events = await uow.customers.events(customer.id)
        return {
            "id": customer.id,
            "version": customer.version,
            "types": {
                t: {"status": r.status, "decision": r.decision, "message": r.message}
                for t, r in statuses.items()
            },
            "fields": {n: {"status": r.status, "error": r.error} for n, r in fields.items()},
            "events": events,
        }

    print(json.dumps(_with_services(args, job), indent=2, default=str))
    return 0


def cmd_keys_rotate_kyc(args: argparse.Namespace) -> int:
    from gateway.personal_data import Vault
    from gateway.sep12_customer.rotation import rotate

    try:
        settings = _load_for_work(args)
    except ConfigError as exc:
        return _fail(exc.problems)
    assert settings.kyc.key is not None
    vault = Vault.from_texts(settings.kyc.key.reveal(), [k.reveal() for k in settings.kyc.old_keys])

    async def run() -> Any:
        async with _services(settings) as (deps, _):
            return await rotate(deps.uow, vault, args.batch)

    report = asyncio.run(run())
    print(f"re-sealed {report.resealed} values under key {vault.current_id}")
    if report.left:
        left = ", ".join(f"{k} ({n})" for k, n in sorted(report.left.items()))
        return _fail(
            [f"kyc.old_keys: values sealed with keys not in GATEWAY_KYC_OLD_KEYS remain: {left}"],
            code=1,
        )
    return 0


def cmd_outbox_list(args: argparse.Namespace) -> int:
    return _print_rows(args, lambda uow: uow.outbox.list(args.status, args.kind, args.limit))


def cmd_outbox_redeliver(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    done = _with_database(
        args, lambda uow: uow.outbox.redeliver(args.id, datetime.now(UTC)), read_only=False
    )
    if not done:
        return _fail([f"no dead message {args.id}"], code=1)
    print(f"message {args.id} queued again")
    return 0


def cmd_horizon_check(args: argparse.Namespace) -> int:
    from gateway.settings import url_host

    try:
        settings = _load(args, check_secrets=False)
    except ConfigError as exc:
        return _fail(exc.problems)
    problem, note = asyncio.run(_horizon_state(settings, args.timeout))
    if problem or note:
        return _fail([problem or note or ""], code=1)
    print(f"Horizon at {url_host(settings.horizon.url)} answers on {settings.network}")
    return 0


def cmd_sandbox_horizon(args: argparse.Namespace) -> int:
    from gateway.sandbox.horizon import main as horizon_main

    passphrase = args.passphrase
    if passphrase is None:
        try:
            passphrase = _load(args, check_secrets=False).network_passphrase
        except ConfigError as exc:
            return _fail(exc.problems)
    if passphrase == PUBLIC_PASSPHRASE:
        return _fail(["the sandbox Horizon simulates test networks only, not the public network"])
    horizon_main(["--host", args.host, "--port", str(args.port), "--passphrase", passphrase])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config", help=f"settings TOML (default: ${CONFIG_ENV} or config/testnet.toml)"
        )
        return p

    serve = with_config(sub.add_parser("serve", help="run the HTTP server"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    with_config(db.add_parser("upgrade", help="apply migrations")).set_defaults(func=cmd_db_upgrade)
    with_config(db.add_parser("status", help="is the schema current?")).set_defaults(
        func=cmd_db_status
    )

    keys = sub.add_parser("keys", help="keys").add_subparsers(dest="keys", required=True)
    keys.add_parser("generate", help="print a fresh signing keypair").set_defaults(
        func=cmd_keys_generate
    )
    rotate = with_config(
        keys.add_parser(
            "rotate-kyc",
            help="re-seal personal data under GATEWAY_KYC_KEY (old keys in "
            "GATEWAY_KYC_OLD_KEYS), in batches, while the gateway runs",
        )
    )
    rotate.add_argument("--batch", type=int, default=200)
    rotate.set_defaults(func=cmd_keys_rotate_kyc)

    work = with_config(
        sub.add_parser(
            "work", help="background work without HTTP: outbox delivery, KYC reviews, sweeps"
        )
    )
    work.add_argument("--once", action="store_true", help="one pass, then exit")
    work.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    work.set_defaults(func=cmd_work)

    watch = with_config(
        sub.add_parser(
            "watch-payments",
            help="match incoming SEP-31 payments (also done by `serve` unless "
            "sep31.watch_in_server is false) and expire unpaid transfers",
        )
    )
    watch.add_argument("--once", action="store_true", help="read until caught up, then exit")
    watch.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    watch.set_defaults(func=cmd_watch_payments)

    transfers_cmd = sub.add_parser("transfers", help="SEP-31 transfers (no personal data)")
    transfers_sub = transfers_cmd.add_subparsers(dest="transfers", required=True)
    t_list = with_config(transfers_sub.add_parser("list", help="transfers, newest first"))
    t_list.add_argument("--status")
    t_list.add_argument("--limit", type=int, default=100)
    t_list.set_defaults(func=cmd_transfers_list)
    t_show = with_config(transfers_sub.add_parser("show", help="a transfer, its history, payouts"))
    t_show.add_argument("transfer_id")
    t_show.add_argument(
        "--sent-info", action="store_true", help="also the values the sender sent with PATCH"
    )
    t_show.set_defaults(func=cmd_transfers_show)
    t_act = with_config(transfers_sub.add_parser("act", help="an operator's action on a transfer"))
    t_act.add_argument("transfer_id")
    t_act.add_argument(
        "action",
        choices=[
            "release",
            "refund",
            "fail",
            "need_customer_info",
            "need_transaction_info",
            "info_updated",
        ],
    )
    t_act.add_argument("--reason", required=True, help="recorded in the history")
    t_act.add_argument("--operator", required=True, help="who acts (recorded)")
    t_act.add_argument(
        "--field",
        action="append",
        help="need_customer_info: receiver_field=what is wrong; need_transaction_info: "
        "name=description (repeat)",
    )
    t_act.set_defaults(func=cmd_transfers_act)

    payments_cmd = sub.add_parser("payments", help="incoming payments the watcher recorded")
    payments_sub = payments_cmd.add_subparsers(dest="payments", required=True)
    p_list = with_config(payments_sub.add_parser("list", help="oldest first"))
    p_list.add_argument(
        "--outcome",
        help="matched, unmatched (everything else), short, over, duplicate, unknown_memo, "
        "wrong_asset, late",
    )
    p_list.add_argument("--limit", type=int, default=100)
    p_list.set_defaults(func=cmd_payments_list)
    p_refund = with_config(
        payments_sub.add_parser(
            "refund",
            help="send back a payment that belongs to no transfer (unknown memo, wrong "
            "asset, a second payment, one after expiry)",
        )
    )
    p_refund.add_argument("payment_id")
    p_refund.add_argument("--reason", required=True)
    p_refund.add_argument("--operator", required=True)
    p_refund.set_defaults(func=cmd_payments_refund)

    kyc = sub.add_parser("kyc", help="customers' KYC").add_subparsers(dest="kyc", required=True)
    decide = with_config(kyc.add_parser("decide", help="accept or reject a customer for a type"))
    decide.add_argument("customer_id")
    decide.add_argument("--type", required=True)
    decide.add_argument("--status", required=True, choices=["ACCEPTED", "REJECTED"])
    decide.add_argument("--reason")
    decide.set_defaults(func=cmd_kyc_decide)
    show = with_config(
        kyc.add_parser("show", help="a customer's statuses and history (no personal data)")
    )
    show.add_argument("customer_id")
    show.set_defaults(func=cmd_kyc_show)

    comp = sub.add_parser("compliance", help="SEP-3 requests from sending institutions")
    comp_sub = comp.add_subparsers(dest="compliance", required=True)
    c_list = with_config(comp_sub.add_parser("list", help="requests, newest first (no data)"))
    c_list.add_argument("--status", choices=["ok", "denied", "pending", "error"])
    c_list.add_argument("--limit", type=int, default=100)
    c_list.set_defaults(func=cmd_compliance_list)
    c_decide = with_config(comp_sub.add_parser("decide", help="decide a (pending) request"))
    c_decide.add_argument("id")
    c_decide.add_argument("--tx", choices=["ok", "denied"])
    c_decide.add_argument("--info", choices=["ok", "denied"])
    c_decide.add_argument("--operator", required=True)
    c_decide.add_argument("--reason")
    c_decide.set_defaults(func=cmd_compliance_decide)

    c_send = with_config(
        comp_sub.add_parser("send", help="ask another institution before paying its customer")
    )
    c_send.add_argument("--to", required=True, help="the receiver's federation address")
    c_send.add_argument("--amount", required=True)
    c_send.add_argument("--asset", required=True, help="CODE:ISSUER")
    c_send.add_argument("--customer", required=True, help="our SEP-12 customer who pays")
    c_send.add_argument("--source", required=True, help="the account the payment leaves from")
    c_send.add_argument("--need-info", action="store_true", help="ask for the receiver's data")
    c_send.add_argument(
        "--key", help="your id for this payment: sending again with it asks nothing new"
    )
    c_send.set_defaults(func=cmd_compliance_send)
    c_allow = with_config(
        comp_sub.add_parser("allow", help="a customer allows an institution their data")
    )
    c_allow.add_argument("customer")
    c_allow.add_argument("domain")
    c_allow.add_argument("--operator", required=True)
    c_allow.add_argument("--remove", action="store_true", help="take the permission back")
    c_allow.set_defaults(func=cmd_compliance_allow)
    c_sent = with_config(comp_sub.add_parser("sent", help="requests we sent, newest first"))
    c_sent.add_argument("--limit", type=int, default=100)
    c_sent.set_defaults(func=cmd_compliance_sent)

    acc = sub.add_parser("accounts", help="the distribution account")
    acc_sub = acc.add_subparsers(dest="accounts", required=True)
    with_config(
        acc_sub.add_parser("status", help="balances, promised and available; warnings")
    ).set_defaults(func=cmd_accounts_status)
    topup = with_config(
        acc_sub.add_parser(
            "plan-topup", help="an unsigned issuer-to-distribution transaction, for offline signing"
        )
    )
    topup.add_argument("--for", dest="period", default="24h", help="e.g. 24h or 7d")
    topup.set_defaults(func=cmd_accounts_plan_topup)

    chan = sub.add_parser("channels", help="channel accounts: transactions in flight at once")
    chan_sub = chan.add_subparsers(dest="channels", required=True)
    c_create = with_config(chan_sub.add_parser("create", help="fund N new channel accounts"))
    c_create.add_argument("count", type=int)
    c_create.set_defaults(func=cmd_channels)
    for name, text in (
        ("list", "lanes and their state"),
        ("verify", "check each against the network; reactivate halted ones that are fit"),
        ("delete", "merge idle channel accounts back into the distribution account"),
    ):
        with_config(chan_sub.add_parser(name, help=text)).set_defaults(func=cmd_channels)

    burse = with_config(
        sub.add_parser("disburse", help="the payout submitter (several may run on PostgreSQL)")
    )
    burse.add_argument("--once", action="store_true", help="until nothing is left to do")
    burse.add_argument("--concurrency", type=int, default=4, help="transactions in flight")
    burse.add_argument("--interval", type=float, default=1.0, help="seconds between idle polls")
    burse.add_argument("--lease-seconds", type=float, default=None)
    burse.add_argument("--log-level", default="info")
    burse.set_defaults(func=cmd_disburse)

    dis = sub.add_parser("disbursements", help="bulk disbursements")
    dis_sub = dis.add_subparsers(dest="disbursements", required=True)
    d_up = with_config(dis_sub.add_parser("upload", help="a CSV file as a draft disbursement"))
    d_up.add_argument("file")
    d_up.add_argument("--name", required=True)
    d_up.add_argument("--operator", required=True)
    d_up.set_defaults(func=cmd_disbursements_upload)
    d_list = with_config(dis_sub.add_parser("list", help="disbursements, newest first"))
    d_list.add_argument("--limit", type=int, default=100)
    d_list.set_defaults(func=cmd_disbursements_list)
    d_show = with_config(dis_sub.add_parser("show", help="one, with its payments and history"))
    d_show.add_argument("id")
    d_show.add_argument("--limit", type=int, default=1000, help="payments shown")
    d_show.set_defaults(func=cmd_disbursements_show)
    d_act = with_config(
        dis_sub.add_parser(
            "act", help="ready, approve, start, pause, cancel, retry (failed payments), drop_retry"
        )
    )
    d_act.add_argument("id")
    from gateway.disbursement.model import OPERATOR_ACTIONS

    d_act.add_argument("action", choices=sorted(OPERATOR_ACTIONS))
    d_act.add_argument("--operator", required=True)
    d_act.add_argument("--reason")
    d_act.set_defaults(func=cmd_disbursements_act)

    ops = sub.add_parser("operators", help="operator API keys (/ops) and their roles")
    ops_sub = ops.add_subparsers(dest="operators", required=True)
    o_create = with_config(ops_sub.add_parser("create", help="a new key, printed once"))
    o_create.add_argument("name")
    from gateway.ops.operators import Role

    o_create.add_argument("--role", required=True, choices=[r.value for r in Role])
    o_create.add_argument("--expires-in-days", type=int)
    o_create.set_defaults(func=cmd_operators)
    o_list = with_config(ops_sub.add_parser("list", help="operators (never their keys)"))
    o_list.add_argument("--limit", type=int, default=100)
    o_list.set_defaults(func=cmd_operators)
    o_revoke = with_config(ops_sub.add_parser("revoke", help="refuse a key from now on"))
    o_revoke.add_argument("id")
    o_revoke.set_defaults(func=cmd_operators)

    hooks = sub.add_parser("webhooks", help="endpoints that receive signed domain events")
    hooks_sub = hooks.add_subparsers(dest="webhooks", required=True)
    w_add = with_config(hooks_sub.add_parser("add", help="a new endpoint; its secret printed once"))
    w_add.add_argument("url")
    w_add.add_argument("--events", required=True, help='patterns, e.g. "transfer.*,payout.*"')
    w_add.set_defaults(func=cmd_webhooks)
    w_list = with_config(hooks_sub.add_parser("list", help="endpoints (never their secrets)"))
    w_list.add_argument("--limit", type=int, default=100)
    w_list.set_defaults(func=cmd_webhooks)
    w_disable = with_config(hooks_sub.add_parser("disable", help="send it nothing more"))
    w_disable.add_argument("id")
    w_disable.set_defaults(func=cmd_webhooks)

    pay = sub.add_parser("payouts", help="single payouts from the distribution account")
    pay_sub = pay.add_subparsers(dest="payouts", required=True)
    send = with_config(
        pay_sub.add_parser(
            "send",
            help="a direct payout: starts at once up to disbursement.direct_approval_above, "
            "else once approved (gateway disbursements act ID approve)",
        )
    )
    send.add_argument("--asset", required=True)
    send.add_argument("--amount", required=True)
    send.add_argument("--to", required=True, help="G..., M... or a federation address")
    send.add_argument("--memo")
    send.add_argument(
        "--external-id", required=True, help="your payment id: it is never paid twice"
    )
    send.add_argument("--reference", default="direct payout", help="the receiver's reference")
    send.add_argument("--operator", required=True)
    send.set_defaults(func=cmd_payouts_send)

    fed = sub.add_parser("federation", help="SEP-2 names of customers (name*home_domain)")
    fed_sub = fed.add_subparsers(dest="federation", required=True)
    f_add = with_config(fed_sub.add_parser("add", help="give a SEP-12 customer a name"))
    f_add.add_argument("name")
    f_add.add_argument("customer_id")
    f_add.set_defaults(func=cmd_federation_add)
    f_list = with_config(fed_sub.add_parser("list", help="names, in order"))
    f_list.add_argument("--limit", type=int, default=100)
    f_list.set_defaults(func=cmd_federation_list)
    f_remove = with_config(fed_sub.add_parser("remove", help="take a name away"))
    f_remove.add_argument("name")
    f_remove.set_defaults(func=cmd_federation_remove)

    box = sub.add_parser("outbox", help="outgoing callbacks and messages")
    box_sub = box.add_subparsers(dest="outbox", required=True)
    listing = with_config(box_sub.add_parser("list", help="messages, oldest first"))
    listing.add_argument("--status", choices=["pending", "sent", "dead"])
    listing.add_argument("--kind")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(func=cmd_outbox_list)
    again = with_config(box_sub.add_parser("redeliver", help="queue a dead message again"))
    again.add_argument("id")
    again.set_defaults(func=cmd_outbox_redeliver)

    config = sub.add_parser("config", help="settings").add_subparsers(dest="cfg", required=True)
    with_config(config.add_parser("check", help="load and validate settings")).set_defaults(
        func=cmd_config_check
    )

    horizon_cmd = sub.add_parser("horizon", help="the configured Horizon")
    horizon_sub = horizon_cmd.add_subparsers(dest="horizon", required=True)
    check = with_config(horizon_sub.add_parser("check", help="does Horizon answer?"))
    check.add_argument("--timeout", type=float, default=3.0)
    check.set_defaults(func=cmd_horizon_check)

    sandbox = sub.add_parser("sandbox", help="local stand-ins for outside systems")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox", required=True)
    fake = with_config(sandbox_sub.add_parser("horizon", help="run the fake Horizon"))
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8100)
    fake.add_argument("--passphrase", default=None, help="default: the config's network")
    fake.set_defaults(func=cmd_sandbox_horizon)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except CommandFailed as exc:
        return _fail(exc.lines, exc.code)
    return code


if __name__ == "__main__":
    sys.exit(main())
