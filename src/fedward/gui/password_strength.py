"""Which passwords a GUI account may have: long, not about its user, and hard to guess.

Length alone lets ``123456789012`` and ``password1234`` through, so every new password
(the GUI's user pages and ``fedward gui adduser`` both end in ``AccountService``) is
also scored by zxcvbn, the strength estimator Dropbox published and the ``zxcvbn``
package maintains: it knows the common-password lists, dictionary words and names,
keyboard walks, dates, repeats, sequences and l33t spellings, and estimates how many
guesses a password takes. A password needs a score of at least ``MIN_SCORE`` (3 of 4:
"safely unguessable", about 10^8 guesses and more), which with argon2id hashes means
years of offline guessing. The user name and the words of this program count as known
to a guesser.
"""

from __future__ import annotations

from zxcvbn import zxcvbn

from fedward.errors import ValidationError

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
MIN_SCORE = 3
# zxcvbn's matching grows fast with length; a password is judged by its first characters
# (the 12-character minimum still applies to the whole).
ESTIMATED_CHARS = 100
KNOWN_WORDS = ("fedward", "node", "hospital", "admin", "gui")


def check_password_strength(password: str, username: str) -> None:
    """Raise ``ValidationError`` saying why, if ``password`` may not be used by ``username``."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValidationError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValidationError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")
    if username and username.lower() in password.lower():
        raise ValidationError("the password must not contain the user name")
    estimate = zxcvbn(password[:ESTIMATED_CHARS], user_inputs=[username, *KNOWN_WORDS])
    if estimate["score"] < MIN_SCORE:
        feedback = estimate["feedback"]
        reasons = [feedback["warning"], *feedback["suggestions"]]
        advice = " ".join(reason for reason in reasons if reason)
        raise ValidationError(
            "this password is too easy to guess" + (f": {advice}" if advice else ""),
            hint="a few unrelated words with digits or punctuation between them work well",
        )
