"""Closing the loop after --send-test: find the test message in the recipient's mailbox
(Inbox or Junk), read the receiver's verdict, and delete it (--verify-delivery)."""
