"""What the bot says and how it reads the customer's answer, in English, Russian and Ukrainian.

Button titles stay within 20 characters (WhatsApp's limit for reply buttons)."""

import re

from services.assist.search.text import Language

YES, NO = "bot.yes", "bot.no"  # the quick replies' ids (InboundMessage.action when pressed)

TEXTS: dict[Language, dict[str, str]] = {
    "en": {"intro": "This may answer your question:", "ask": "Did this answer your question?",
           "yes": "Yes, thanks", "no": "No, a person please", "glad": "Glad it helped! Write any time.",
           "handing_over": "I am passing you to a person: they will see this conversation."},
    "ru": {"intro": "Возможно, это ответ на ваш вопрос:", "ask": "Это ответило на ваш вопрос?",
           "yes": "Да, спасибо", "no": "Нет, нужен человек", "glad": "Рады, что помогло! Пишите в любое время.",
           "handing_over": "Передаю вас сотруднику: он увидит эту переписку."},
    "uk": {"intro": "Можливо, це відповідь на ваше запитання:", "ask": "Це відповіло на ваше запитання?",
           "yes": "Так, дякую", "no": "Ні, потрібна людина", "glad": "Раді, що допомогло! Пишіть будь-коли.",
           "handing_over": "Передаю вас співробітнику: він побачить цю розмову."},
}

# A typed answer instead of a button: whole words, any case. Anything else is taken as a new question.
_YES = re.compile(r"^\W*(1|y|yes|yeah|yep|ok|okay|thanks?|thank you|it did|helped|solved|"
                  r"да|ага|спасибо|помогло|ок|так|дякую|допомогло)\b", re.IGNORECASE)
_NO = re.compile(r"^\W*(2|n|no|nope|not really|didn'?t|person|human|agent|operator|"
                 r"нет|не помогло|человек|оператор|сотрудник|ні|не допомогло|людина|оператор|співробітник)\b",
                 re.IGNORECASE)


def reading_of(text: str, action: str | None) -> str:
    """"yes", "no" or "other": what a customer's message says about the bot's answer."""
    if action in (YES, NO):
        return "yes" if action == YES else "no"
    text = text.strip()
    if _NO.match(text):  # first: "no, thanks" is a no
        return "no"
    if _YES.match(text):
        return "yes"
    return "other"
