"""A seeded generator of simulated support traffic for one workspace: a background of varied inbound
messages in English, Russian and Ukrainian, with injected bursts (many customers reporting one problem)
and the ground truth of which message belongs to which burst.

- Background: about 2,000 conversations a day (3,000-3,500 inbound messages) arriving by a
  non-homogeneous Poisson process shaped by the hour (night 0.15 x, day peak 1.6 x the mean). Each
  conversation has a topic drawn from 24 recurring ones (weights: "where is my order" is the
  commonest), written by templates with slots (order numbers, items, cities, days), several
  phrasings per topic and language, an optional greeting before and a politeness tail after; some
  conversations open with a bare greeting ("hi", "добрый день"), some add a follow-up ("any news?",
  "дякую") or restate their problem minutes later. Incident-like topics (a failed card payment, an
  app that crashes) also occur in the background, rarely, as they do in life.
- Bursts: a problem (`BURST_TOPICS`) reported by 15-45 different customers over 10-60 minutes,
  arrival times rising then falling (a triangular profile peaking in the first third), each customer
  in a language drawn from the day's mix and on any channel, a third of them writing twice. The
  burst's slots (the city, the app version) are fixed for the burst, as in a real incident. Start =
  its first message.
- Hard negative ("where is my order" morning rush): from 08:00 to 11:00 that topic's weight is
  multiplied by `rush` (3): it goes from about 15 % of the traffic to about 35 %, on top of the
  morning ramp (its count per hour then about 30 x the night's). It is a natural peak of a topic that
  is always there, not an incident: the detector compares a group's share of the traffic with its
  long-run share, so the ramp cancels, and a 2-3 x rise of a share is under its `ratio` (8) and
  within its `tolerance` (2). A rise far above it should be an incident; measured (evaluate.py counts
  these alerts apart: "rush"), the detector stays quiet up to `rush` 15 and alerts at 30 on one day
  in six: a topic already common in the background must rise very far before it is news.
- Lead-in: `lead_in` (12 h) of background alone before the first day, so a detector is evaluated
  past its warm-up (its false alerts there count too). Truth: the burst of each burst conversation,
  the topic of each background conversation, the language of each message.
"""

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.assist.surges.detector import InboundMessage

CHANNELS = ("webchat", "email", "whatsapp", "telegram", "messenger", "sms")
LANGUAGES = ("en", "ru", "uk")
DAY_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, 00:00 UTC; only the shape of the day matters

# Relative traffic per hour of the day (mean 1): quiet at night, peaks late morning and afternoon.
HOURLY_SHAPE = (0.15, 0.1, 0.1, 0.1, 0.15, 0.25, 0.5, 0.9, 1.4, 1.6, 1.6, 1.5,
                1.4, 1.5, 1.6, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0, 0.8, 0.5, 0.3)

CITIES = [("Kyiv", "Киеве", "Києві"), ("Lviv", "Львове", "Львові"), ("Kharkiv", "Харькове", "Харкові"),
          ("Odesa", "Одессе", "Одесі"), ("Dnipro", "Днепре", "Дніпрі"), ("Zaporizhzhia", "Запорожье", "Запоріжжі")]
ITEMS = [("phone case", "чехол", "чохол"), ("kettle", "чайник", "чайник"), ("sneakers", "кроссовки", "кросівки"),
         ("headphones", "наушники", "навушники"), ("blender", "блендер", "блендер"), ("jacket", "куртку", "куртку"),
         ("router", "роутер", "роутер"), ("coffee maker", "кофеварку", "кавоварку")]
DAYS = [("yesterday", "вчера", "вчора"), ("three days ago", "три дня назад", "три дні тому"),
        ("last week", "на прошлой неделе", "минулого тижня"), ("on Monday", "в понедельник", "у понеділок"),
        ("a week ago", "неделю назад", "тиждень тому")]

GREETINGS = {
    "en": ["hi", "hello", "Hi there", "good morning", "hey", "Hello!"],
    "ru": ["привет", "здравствуйте", "добрый день", "Добрый вечер", "Здравствуйте!", "алло"],
    "uk": ["привіт", "добрий день", "вітаю", "Доброго ранку", "Добрий вечір!", "вітаю!"],
}
TAILS = {
    "en": ["please help", "thanks", "thank you in advance", "what should I do?", "!!!", "asap please", ""],
    "ru": ["помогите пожалуйста", "спасибо", "заранее спасибо", "что делать?", "!!!", "срочно", ""],
    "uk": ["допоможіть будь ласка", "дякую", "заздалегідь дякую", "що робити?", "!!!", "терміново", ""],
}
FOLLOW_UPS = {
    "en": ["any news?", "thanks", "ok", "thank you!", "hello?", "is anyone there?", "ok thanks a lot"],
    "ru": ["есть новости?", "спасибо", "ок", "спасибо большое", "ау", "вы тут?", "ну что там?"],
    "uk": ["є новини?", "дякую", "ок", "дуже дякую", "ау", "ви тут?", "ну що там?"],
}

# Background topics: weight, then phrasings per language. Slots: {order} {item} {city} {day} {amount}.
BACKGROUND_TOPICS: dict[str, tuple[float, dict[str, list[str]]]] = {
    "where_is_order": (10, {
        "en": ["where is my order {order}?", "my order {order} has not arrived yet", "when will my parcel arrive?",
               "I ordered a {item} {day} and it is still not here", "can you track order {order} for me",
               "the tracking for {order} has not changed for days", "still waiting for my delivery"],
        "ru": ["где мой заказ {order}?", "заказ {order} до сих пор не пришел", "когда придет моя посылка?",
               "заказала {item} {day} и до сих пор нет", "подскажите где находится заказ {order}",
               "трекинг {order} не обновляется уже несколько дней", "все еще жду доставку"],
        "uk": ["де моє замовлення {order}?", "замовлення {order} досі не прийшло", "коли прийде моя посилка?",
               "замовила {item} {day} і досі немає", "підкажіть де знаходиться замовлення {order}",
               "трекінг {order} не оновлюється вже кілька днів", "досі чекаю на доставку"]}),
    "change_address": (3, {
        "en": ["can I change the delivery address for order {order}?", "I need to change my shipping address",
               "please deliver {order} to another address in {city}"],
        "ru": ["можно изменить адрес доставки заказа {order}?", "мне нужно поменять адрес доставки",
               "доставьте пожалуйста {order} на другой адрес в {city}"],
        "uk": ["чи можна змінити адресу доставки замовлення {order}?", "мені треба змінити адресу доставки",
               "доставте будь ласка {order} на іншу адресу в {city}"]}),
    "refund": (5, {
        "en": ["I want a refund for order {order}", "when will I get my money back?", "refund for the {item} please",
               "you promised a refund {day} and I still have nothing", "how long does a refund take?"],
        "ru": ["хочу вернуть деньги за заказ {order}", "когда вернут деньги?", "оформите возврат за {item}",
               "обещали вернуть деньги {day} а до сих пор ничего", "сколько идет возврат средств?"],
        "uk": ["хочу повернути гроші за замовлення {order}", "коли повернуть гроші?", "оформіть повернення за {item}",
               "обіцяли повернути гроші {day} а досі нічого", "скільки триває повернення коштів?"]}),
    "return_item": (4, {
        "en": ["how do I return the {item}?", "I want to return an item, it does not fit",
               "the {item} is defective, can I send it back?", "where do I bring a return in {city}?"],
        "ru": ["как вернуть {item}?", "хочу вернуть товар, не подошел размер", "{item} бракованный, можно вернуть?",
               "куда принести возврат в {city}?"],
        "uk": ["як повернути {item}?", "хочу повернути товар, не підійшов розмір", "{item} бракований, можна повернути?",
               "куди принести повернення в {city}?"]}),
    "cancel_order": (3, {
        "en": ["please cancel my order {order}", "I ordered by mistake, how do I cancel?", "cancel order {order} pls"],
        "ru": ["отмените пожалуйста заказ {order}", "заказал по ошибке, как отменить?", "отмена заказа {order}"],
        "uk": ["скасуйте будь ласка замовлення {order}", "замовив помилково, як скасувати?",
               "скасування замовлення {order}"]}),
    "invoice": (2, {
        "en": ["I need an invoice for order {order}", "can you send me the receipt?", "where can I download my receipt"],
        "ru": ["нужен счет для заказа {order}", "пришлите пожалуйста чек", "где скачать чек за покупку"],
        "uk": ["потрібен рахунок для замовлення {order}", "надішліть будь ласка чек", "де завантажити чек за покупку"]}),
    "password_reset": (3, {
        "en": ["I forgot my password", "how do I reset my password?", "the reset link in the email has expired"],
        "ru": ["забыл пароль", "как сбросить пароль?", "ссылка для сброса пароля устарела"],
        "uk": ["забув пароль", "як скинути пароль?", "посилання для скидання пароля застаріло"]}),
    "change_contact": (2, {
        "en": ["how do I change the phone number in my account?", "I want to update my email address"],
        "ru": ["как поменять номер телефона в аккаунте?", "хочу изменить свою почту в профиле"],
        "uk": ["як змінити номер телефону в акаунті?", "хочу змінити свою пошту в профілі"]}),
    "plan_price": (3, {
        "en": ["how much is the premium plan?", "what is the difference between the plans?",
               "is there a cheaper tariff?", "I want to switch to a yearly plan"],
        "ru": ["сколько стоит премиум тариф?", "чем отличаются тарифы?", "есть тариф подешевле?",
               "хочу перейти на годовой тариф"],
        "uk": ["скільки коштує преміум тариф?", "чим відрізняються тарифи?", "є дешевший тариф?",
               "хочу перейти на річний тариф"]}),
    "bonus_points": (2, {
        "en": ["my bonus points were not credited", "how do I use my loyalty points?"],
        "ru": ["мне не начислили бонусы", "как потратить бонусные баллы?"],
        "uk": ["мені не нарахували бонуси", "як витратити бонусні бали?"]}),
    "promo_code": (2, {
        "en": ["the promo code does not work", "discount code SPRING is not accepted at checkout"],
        "ru": ["промокод не работает", "скидочный код SPRING не принимается при оформлении"],
        "uk": ["промокод не працює", "код знижки SPRING не приймається при оформленні"]}),
    "store_hours": (2, {
        "en": ["what are the opening hours of your store in {city}?", "is the shop in {city} open on Sunday?"],
        "ru": ["какой график работы магазина в {city}?", "магазин в {city} работает в воскресенье?"],
        "uk": ["який графік роботи магазину в {city}?", "магазин в {city} працює в неділю?"]}),
    "availability": (3, {
        "en": ["do you have the {item} in stock?", "when will the {item} be available again?"],
        "ru": ["есть ли в наличии {item}?", "когда снова появится {item}?"],
        "uk": ["чи є в наявності {item}?", "коли знову з'явиться {item}?"]}),
    "warranty": (2, {
        "en": ["my {item} broke after a month, is it under warranty?", "where is the service center in {city}?"],
        "ru": ["{item} сломался через месяц, это гарантия?", "где сервисный центр в {city}?"],
        "uk": ["{item} зламався через місяць, це гарантія?", "де сервісний центр у {city}?"]}),
    "delivery_cost": (2, {
        "en": ["how much is delivery to {city}?", "is delivery free over {amount}?"],
        "ru": ["сколько стоит доставка в {city}?", "доставка бесплатная от {amount}?"],
        "uk": ["скільки коштує доставка в {city}?", "доставка безкоштовна від {amount}?"]}),
    "cancel_subscription": (2, {
        "en": ["how do I cancel my subscription?", "stop charging me every month, cancel the subscription"],
        "ru": ["как отменить подписку?", "перестаньте списывать каждый месяц, отмените подписку"],
        "uk": ["як скасувати підписку?", "припиніть списувати щомісяця, скасуйте підписку"]}),
    "wrong_item": (2, {
        "en": ["I received the wrong item", "I ordered a {item} but got something else"],
        "ru": ["мне привезли не тот товар", "заказывал {item} а пришло другое"],
        "uk": ["мені привезли не той товар", "замовляв {item} а прийшло інше"]}),
    "courier": (2, {
        "en": ["the courier was rude", "the courier did not call before coming", "courier was two hours late"],
        "ru": ["курьер нахамил", "курьер не позвонил перед приездом", "курьер опоздал на два часа"],
        "uk": ["кур'єр нагрубив", "кур'єр не зателефонував перед приїздом", "кур'єр запізнився на дві години"]}),
    "top_up": (2, {
        "en": ["how can I top up my balance?", "I topped up {amount} but the balance did not change"],
        "ru": ["как пополнить баланс?", "пополнил на {amount} а баланс не изменился"],
        "uk": ["як поповнити баланс?", "поповнив на {amount} а баланс не змінився"]}),
    "wait_complaint": (1, {
        "en": ["why do I have to wait so long for an answer?", "nobody answers in the chat for an hour"],
        "ru": ["почему так долго отвечаете?", "в чате никто не отвечает уже час"],
        "uk": ["чому так довго відповідаєте?", "у чаті ніхто не відповідає вже годину"]}),
    "size_advice": (2, {
        "en": ["what size should I take for the {item}?", "does the {item} run small?"],
        "ru": ["какой размер взять для {item}?", "{item} маломерит?"],
        "uk": ["який розмір взяти для {item}?", "{item} маломірить?"]}),
    "gift_card": (1, {
        "en": ["can I pay with a gift card?", "my gift card balance is wrong"],
        "ru": ["можно оплатить подарочной картой?", "неправильный баланс подарочной карты"],
        "uk": ["чи можна оплатити подарунковою карткою?", "неправильний баланс подарункової картки"]}),
    # Incident-like topics also happen one customer at a time: background, not a burst.
    "payment_failed_single": (0.6, {
        "en": ["my card payment did not go through", "payment failed, was I charged?"],
        "ru": ["не прошла оплата картой", "оплата не прошла, деньги списали?"],
        "uk": ["не пройшла оплата карткою", "оплата не пройшла, гроші списали?"]}),
    "app_problem_single": (0.6, {
        "en": ["the app is slow on my phone", "the app logs me out all the time"],
        "ru": ["приложение тормозит на телефоне", "приложение постоянно выкидывает из аккаунта"],
        "uk": ["застосунок гальмує на телефоні", "застосунок постійно викидає з акаунта"]}),
}

# Incidents: phrasings per language; {city} and {version} are fixed for the burst.
BURST_TOPICS: dict[str, dict[str, list[str]]] = {
    "card_payment_fails": {
        "en": ["payment by card fails", "I can't pay with my card, it says transaction declined",
               "card payment is not working", "checkout fails when I pay by Visa", "my card is rejected at payment",
               "can't complete payment, error after entering card details", "card payments are broken?"],
        "ru": ["не проходит оплата картой", "не могу оплатить картой, пишет транзакция отклонена",
               "оплата картой не работает", "при оплате визой ошибка", "карту отклоняет при оплате",
               "не получается оплатить, ошибка после ввода данных карты", "у вас сломалась оплата картой?"],
        "uk": ["не проходить оплата карткою", "не можу оплатити карткою, пише транзакцію відхилено",
               "оплата карткою не працює", "при оплаті візою помилка", "картку відхиляє при оплаті",
               "не вдається оплатити, помилка після введення даних картки", "у вас зламалась оплата карткою?"]},
    "app_crashes_after_update": {
        "en": ["the app crashes after the update", "after updating to {version} the app does not open",
               "app closes immediately on start since the update", "your app keeps crashing on my phone",
               "updated the app and now it won't launch", "the new version {version} crashes on startup"],
        "ru": ["приложение вылетает после обновления", "после обновления до {version} приложение не открывается",
               "приложение сразу закрывается при запуске после обновления", "ваше приложение постоянно вылетает",
               "обновил приложение и теперь оно не запускается", "новая версия {version} падает при запуске"],
        "uk": ["застосунок вилітає після оновлення", "після оновлення до {version} застосунок не відкривається",
               "застосунок одразу закривається при запуску після оновлення", "ваш застосунок постійно вилітає",
               "оновив застосунок і тепер він не запускається", "нова версія {version} падає при запуску"]},
    "no_internet_in_city": {
        "en": ["no internet in {city}", "mobile internet is not working in {city} since morning",
               "no signal at all in {city}", "is there an outage in {city}? no connection",
               "internet is down in {city}", "my phone has no network in {city}"],
        "ru": ["нет интернета в {city}", "в {city} не работает мобильный интернет с утра", "нет связи в {city}",
               "у вас авария в {city}? нет соединения", "в {city} пропал интернет", "телефон не ловит сеть в {city}"],
        "uk": ["немає інтернету в {city}", "у {city} не працює мобільний інтернет з ранку", "немає зв'язку в {city}",
               "у вас аварія в {city}? немає з'єднання", "у {city} зник інтернет", "телефон не ловить мережу в {city}"]},
    "sms_code_missing": {
        "en": ["I don't receive the SMS code", "the login code never arrives", "no verification sms, can't log in",
               "one-time password is not coming to my phone", "sms with the confirmation code does not come"],
        "ru": ["не приходит смс с кодом", "код для входа не приходит", "нет смс подтверждения, не могу войти",
               "одноразовый пароль не приходит на телефон", "смс с кодом подтверждения не приходит"],
        "uk": ["не приходить смс з кодом", "код для входу не приходить", "немає смс підтвердження, не можу увійти",
               "одноразовий пароль не приходить на телефон", "смс з кодом підтвердження не надходить"]},
    "website_down": {
        "en": ["your website is down", "the site shows error 502", "I can't open your website",
               "website not loading at all", "site gives a server error"],
        "ru": ["ваш сайт не работает", "сайт выдает ошибку 502", "не могу открыть ваш сайт",
               "сайт вообще не грузится", "сайт выдает ошибку сервера"],
        "uk": ["ваш сайт не працює", "сайт видає помилку 502", "не можу відкрити ваш сайт",
               "сайт взагалі не вантажиться", "сайт видає помилку сервера"]},
    "double_charge": {
        "en": ["I was charged twice", "the money was taken two times for one order",
               "double charge on my card", "you debited my account twice"],
        "ru": ["с меня списали деньги дважды", "деньги сняли два раза за один заказ",
               "двойное списание с карты", "списали оплату два раза"],
        "uk": ["з мене списали гроші двічі", "гроші зняли два рази за одне замовлення",
               "подвійне списання з картки", "списали оплату два рази"]},
}


@dataclass(frozen=True, slots=True)
class Burst:
    """An injected incident: its topic, when its first message arrived, its conversations."""
    id: str
    topic: str
    start: datetime
    end: datetime
    conversations: frozenset[str]


@dataclass(slots=True)
class Stream:
    """A simulated stretch of traffic in arrival order, and the truth about its bursts."""
    messages: list[InboundMessage]
    bursts: list[Burst]
    burst_of_conversation: dict[str, str] = field(default_factory=dict)
    language_of_message: dict[str, str] = field(default_factory=dict)
    days: float = 1.0  # its span (lead-in included), for the false alerts per day
    topic_of_conversation: dict[str, str] = field(default_factory=dict)  # the background's


def _slots(rng: random.Random, language: int, fixed: dict[str, str] | None = None) -> dict[str, str]:
    slots = {"order": f"{rng.choice(['', '#', '№'])}{rng.randint(100000, 999999)}",
             "item": rng.choice(ITEMS)[language], "city": rng.choice(CITIES)[language],
             "day": rng.choice(DAYS)[language], "amount": f"{rng.choice([100, 200, 500, 1000, 1500])}",
             "version": f"{rng.randint(3, 5)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}"}
    return slots | (fixed or {})


def _dress(rng: random.Random, language: str, body: str) -> str:
    """A phrasing as a customer types it: sometimes a greeting before, a tail after, no capitals."""
    text = body
    if rng.random() < 0.3:
        text = f"{rng.choice(GREETINGS[language])}, {text}"
    if rng.random() < 0.3:
        text = f"{text} {rng.choice(TAILS[language])}".strip()
    if rng.random() < 0.4:
        text = text.lower()
    elif rng.random() < 0.5:
        text = text[:1].upper() + text[1:]
    return text


def _phrase(rng: random.Random, language: str, phrasings: dict[str, list[str]],
            fixed: dict[str, str] | None = None) -> str:
    index = LANGUAGES.index(language)
    return _dress(rng, language, rng.choice(phrasings[language]).format(**_slots(rng, index, fixed)))


def _language(rng: random.Random, mix: dict[str, float]) -> str:
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def _arrivals(rng: random.Random, start: datetime, days: float, per_day: float) -> list[datetime]:
    """Conversation openings: a Poisson process whose rate follows HOURLY_SHAPE (by thinning)."""
    peak = per_day / 1440 * max(HOURLY_SHAPE)  # per minute
    out, minute, end = [], 0.0, days * 1440
    while True:
        minute += rng.expovariate(peak)
        if minute >= end:
            return out
        at = start + timedelta(minutes=minute)
        if rng.random() < HOURLY_SHAPE[at.hour] / max(HOURLY_SHAPE):
            out.append(at)


def _background_topic(rng: random.Random, at: datetime, rush: float) -> str:
    names = list(BACKGROUND_TOPICS)
    weights = [BACKGROUND_TOPICS[name][0] for name in names]
    if 8 <= at.hour < 11:  # the morning rush of "where is my order": the hard negative
        weights[names.index("where_is_order")] *= rush
    return rng.choices(names, weights=weights)[0]


class _Builder:
    """Accumulates messages and truth; names conversations and messages in order of creation."""

    def __init__(self, rng: random.Random, workspace_id: str, mix: dict[str, float]):
        self.rng, self.workspace_id, self.mix = rng, workspace_id, mix
        self.messages: list[InboundMessage] = []
        self.language_of_message: dict[str, str] = {}
        self.channels: dict[str, str] = {}
        self.conversations = 0

    def add(self, conversation_id: str, at: datetime, text: str, language: str) -> None:
        message_id = f"m{len(self.messages)}"
        channel = self.channels.setdefault(conversation_id, self.rng.choice(CHANNELS))
        self.messages.append(InboundMessage(id=message_id, workspace_id=self.workspace_id,
                                            conversation_id=conversation_id, channel=channel, text=text, at=at))
        self.language_of_message[message_id] = language

    def conversation(self, opened: datetime, phrasings: dict[str, list[str]],
                     fixed: dict[str, str] | None = None, restate: float = 0.1, language: str | None = None) -> str:
        """One customer's inbound messages: maybe a bare greeting first, the problem, maybe more."""
        rng, language = self.rng, language or _language(self.rng, self.mix)
        self.conversations += 1
        cid = f"c{self.conversations}"
        at = opened
        if rng.random() < 0.2:
            self.add(cid, at, rng.choice(GREETINGS[language]), language)
            at += timedelta(seconds=rng.uniform(5, 60))
        self.add(cid, at, _phrase(rng, language, phrasings, fixed), language)
        if rng.random() < restate:
            self.add(cid, at + timedelta(minutes=rng.uniform(1, 15)), _phrase(rng, language, phrasings, fixed),
                     language)
        if rng.random() < 0.3:
            self.add(cid, at + timedelta(minutes=rng.uniform(2, 30)), rng.choice(FOLLOW_UPS[language]), language)
        return cid


def generate(seed: int, days: int = 1, per_day: float = 2000, bursts_per_day: int = 3,
             mix: dict[str, float] | None = None, rush: float = 3.0, workspace_id: str = "w1",
             start: datetime = DAY_START, lead_in: timedelta = timedelta(hours=12)) -> Stream:
    """`days` of traffic of one workspace: background conversations, `bursts_per_day` bursts a day;
    preceded by `lead_in` of background alone (the day before: a detector is not evaluated cold)."""
    rng = random.Random(seed)
    mix = mix or {"en": 0.34, "ru": 0.33, "uk": 0.33}
    builder = _Builder(rng, workspace_id, mix)
    topic_of_conversation: dict[str, str] = {}
    lead_days = lead_in.total_seconds() / 86400
    for opened in _arrivals(rng, start - lead_in, days + lead_days, per_day):
        topic = _background_topic(rng, opened, rush)
        topic_of_conversation[builder.conversation(opened, BACKGROUND_TOPICS[topic][1])] = topic
    bursts, burst_of_conversation = [], {}
    for day in range(days):
        for index, topic in enumerate(rng.sample(list(BURST_TOPICS), bursts_per_day)):
            burst = _burst(rng, builder, f"b{day}.{index}", topic, start + timedelta(days=day))
            bursts.append(burst)
            burst_of_conversation |= dict.fromkeys(burst.conversations, burst.id)
    messages = sorted(builder.messages, key=lambda message: message.at)
    return Stream(messages, bursts, burst_of_conversation, builder.language_of_message, days + lead_days,
                  topic_of_conversation)


def _burst(rng: random.Random, builder: _Builder, burst_id: str, topic: str, day: datetime) -> Burst:
    """Customers of one incident, arriving over 10-60 minutes, at any hour but mostly by day."""
    hour = rng.choices(range(24), weights=HOURLY_SHAPE)[0]
    opened = day + timedelta(hours=hour, minutes=rng.uniform(0, 59))
    duration = rng.uniform(10, 60)
    customers = rng.randint(15, 45)
    fixed = {"city": (city := rng.choice(CITIES))[0], "version": f"{rng.randint(3, 5)}.{rng.randint(0, 9)}.0"}
    first = len(builder.messages)
    conversations = set()
    for _ in range(customers):
        offset = rng.triangular(0, duration, duration / 3)
        language = _language(rng, builder.mix)
        local = fixed | {"city": city[LANGUAGES.index(language)]}
        conversations.add(builder.conversation(opened + timedelta(minutes=offset), BURST_TOPICS[topic], local,
                                               restate=0.33, language=language))
    times = [message.at for message in builder.messages[first:]]
    return Burst(burst_id, topic, min(times), max(times), frozenset(conversations))

