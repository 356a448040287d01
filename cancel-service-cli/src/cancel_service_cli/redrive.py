"""`cancel-service redrive`: puts a dead-letter queue's messages back on the lane they came from.

With SQS's message move task where the endpoint offers it: SQS moves the messages itself, and the
command follows the task to its end. Where it does not (an endpoint without the action, or one
that refuses it), the command moves them itself: it receives a batch, sends it to the lane, and
deletes from the dead-letter queue only what the lane accepted. A message is never lost: until
it is deleted it stays in the dead-letter queue, and comes back there after its visibility
timeout if the command stops half-way. A delete whose answer is lost may leave a copy that a
later redrive sends again: the stoppers are idempotent per message.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TextIO

from botocore.exceptions import ClientError

from cancel_service_cli.arguments import PROG
from cancel_service_cli.errors import CommandError
from cancel_service_cli.queues import Queue, lanes_of, queue_url, read_queue, read_queues, stack_queue_urls
from cancel_service_cli.stack import aws_session, describe_stack

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef, SendMessageBatchRequestEntryTypeDef

# How long a received dead letter stays invisible while it is sent to its lane and deleted.
COPY_VISIBILITY_SECONDS = 60
MOVE_TASK_POLL_SECONDS = 2.0
MOVE_TASK_ENDED = ("COMPLETED", "CANCELLED", "FAILED")


@dataclass(slots=True)
class Move:
    """One dead-letter queue's messages moved (or, in a dry run, to be moved) to one lane."""

    source: str  # queue names
    destination: str
    source_url: str
    destination_url: str
    messages: int  # what the dead-letter queue held when the command read it
    dry_run: bool
    method: str | None = None  # "move-task" or "receive-send"; None when nothing was moved
    moved: int = 0
    failed: int = 0
    error: str | None = None

    def line(self) -> str:
        if self.dry_run:
            return f"would move {self.messages} message(s) from {self.source} to {self.destination} (dry run)"
        if self.method is None:
            return f"nothing to move from {self.source}"
        text = f"moved {self.moved} message(s) from {self.source} to {self.destination} ({self.method})"
        if self.failed:
            text += f"; {self.failed} could not be sent and stay in {self.source}"
        if self.error:
            text += f"; {self.error}"
        return text

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.error is None


def add_parser(commands: Any) -> None:
    redrive = commands.add_parser(
        "redrive",
        help="move a dead-letter queue's messages back to the lane they came from",
        description=(
            "Move the messages of dead-letter queues back to their source queue: with --stack, every "
            "lane's dead-letter queue to its lane; with --queue, that dead-letter queue to the "
            "queue whose redrive policy names it (or to --to). Uses SQS's message move task where "
            "the endpoint offers it, otherwise receives, sends to the source and only then deletes. "
            "Exit 0 when every message was moved (or counted, with --dry-run), 1 when some could not "
            "be (they stay where they were) or AWS refused a call, 2 for a refused command line, 130 "
            "on Ctrl-C (nothing is lost: a move task goes on, a message being moved stays in the "
            "dead-letter queue until the source has it)."
        ),
    )
    where = redrive.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--stack", metavar="NAME", help="the service's CloudFormation stack (outputs *QueueUrl)"
    )
    where.add_argument("--queue", metavar="NAME|URL", help="the dead-letter queue to empty")
    redrive.add_argument(
        "--to",
        metavar="NAME|URL",
        help="with --queue: where its messages go (default: the queue it is the dead-letter queue of)",
    )
    redrive.add_argument("--dry-run", action="store_true", help="count what would be moved; move nothing")
    redrive.add_argument("--json", action="store_true", help="print the moves as JSON on stdout")
    redrive.set_defaults(run=run_redrive, refuse=redrive.error)


def run_redrive(args: argparse.Namespace) -> int:
    if args.to is not None and args.queue is None:
        args.refuse("--to goes with --queue")  # exits 2; nothing was moved
    sqs = aws_session().client("sqs")
    if args.stack is not None:
        pairs = stack_pairs(sqs, describe_stack(aws_session().client("cloudformation"), args.stack))
    else:
        pairs = [queue_pair(sqs, args.queue, args.to)]
    human = sys.stderr if args.json else sys.stdout
    moves = []
    for dead_letters, lane in pairs:
        move = Move(
            dead_letters.name, lane.name, dead_letters.url, lane.url, dead_letters.messages, args.dry_run
        )
        if not args.dry_run and dead_letters.messages:
            redrive(sqs, dead_letters, lane, move, human)
        moves.append(move)
        print(move.line(), file=human)
    if args.json:
        print(json.dumps({"moves": [asdict(move) for move in moves]}))
    return 0 if all(move.ok for move in moves) else 1


def stack_pairs(sqs: SQSClient, stack: Any) -> list[tuple[Queue, Queue]]:
    """Every lane's dead-letter queue with its lane."""
    queues = read_queues(sqs, stack_queue_urls(stack))
    pairs = [
        (dead_letters, lane)
        for dead_letters in queues
        if not dead_letters.is_lane
        for lane in lanes_of(queues, dead_letters)
    ]
    if not pairs:
        raise CommandError(f"stack {stack.name} names no queue with a dead-letter queue in its outputs")
    return pairs


def queue_pair(sqs: SQSClient, name: str, to: str | None) -> tuple[Queue, Queue]:
    dead_letters = read_queue(sqs, queue_url(sqs, name))
    if to is not None:
        return dead_letters, read_queue(sqs, queue_url(sqs, to))
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dead_letters.url).get("queueUrls", [])
    if len(sources) != 1:
        raise CommandError(
            f"{dead_letters.name} is the dead-letter queue of {len(sources)} queues"
            + (f" ({', '.join(url.rsplit('/', 1)[-1] for url in sources)})" if sources else "")
            + ": name the destination with --to"
        )
    return dead_letters, read_queue(sqs, sources[0])


def redrive(sqs: SQSClient, dead_letters: Queue, lane: Queue, move: Move, log: TextIO) -> None:
    try:
        sqs.start_message_move_task(SourceArn=dead_letters.arn, DestinationArn=lane.arn)
    except ClientError as error:
        code = error.response["Error"].get("Code", "error")
        print(f"{PROG}: no message move task here ({code}): moving by receive, send, delete", file=log)
        move.method = "receive-send"
        move_by_copy(sqs, dead_letters, lane, move)
        return
    move.method = "move-task"
    follow_move_task(sqs, dead_letters, move)


def follow_move_task(sqs: SQSClient, dead_letters: Queue, move: Move) -> None:
    """Until the task ends (SQS moves up to 500 messages a second); Ctrl-C leaves it going."""
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=dead_letters.arn, MaxResults=1)["Results"]
        if not tasks:
            move.error = f"SQS lists no move task of {dead_letters.name}"
            return
        task: Any = tasks[0]
        move.moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
        status = task.get("Status")
        if status in MOVE_TASK_ENDED:
            if status != "COMPLETED":
                move.error = f"the move task ended {status}: {task.get('FailureReason', 'no reason given')}"
            return
        time.sleep(MOVE_TASK_POLL_SECONDS)


def move_by_copy(sqs: SQSClient, dead_letters: Queue, lane: Queue, move: Move) -> None:
    """Receive, send to the lane, delete what the lane accepted; until the dead-letter queue
    answers empty. A message the lane refused stays invisible for COPY_VISIBILITY_SECONDS, so it
    is not received twice in this run, and stays in the dead-letter queue."""
    while True:
        messages = sqs.receive_message(
            QueueUrl=dead_letters.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=COPY_VISIBILITY_SECONDS,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return
        by_id = {str(index): message for index, message in enumerate(messages)}
        sent = sqs.send_message_batch(
            QueueUrl=lane.url,
            Entries=[_resent(entry_id, message) for entry_id, message in by_id.items()],
        )
        move.failed += len(sent.get("Failed", []))
        accepted = [entry["Id"] for entry in sent.get("Successful", [])]
        if not accepted:
            continue
        deleted = sqs.delete_message_batch(
            QueueUrl=dead_letters.url,
            Entries=[
                {"Id": entry_id, "ReceiptHandle": by_id[entry_id]["ReceiptHandle"]} for entry_id in accepted
            ],
        )
        # Sent but not deleted: the lane has it, and so may a later redrive (a duplicate stop,
        # which the stopper treats as done); counted as moved.
        move.moved += len(accepted)
        if deleted.get("Failed"):
            move.error = (
                f"{len(deleted['Failed'])} sent message(s) could not be deleted and may be sent again"
            )


def _resent(entry_id: str, message: MessageTypeDef) -> SendMessageBatchRequestEntryTypeDef:
    """The message as it was sent: its body and its own attributes (not SQS's)."""
    entry: SendMessageBatchRequestEntryTypeDef = {"Id": entry_id, "MessageBody": message["Body"]}
    if message.get("MessageAttributes"):
        entry["MessageAttributes"] = message["MessageAttributes"]
    return entry
