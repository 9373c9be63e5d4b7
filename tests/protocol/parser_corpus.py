"""Realistic MLLM replies to MMAD questions, with the letter a careful reader would take (None: no answer).

Written for mmad in the styles seen from GPT-4o, Gemini, Claude, Qwen-VL, InternVL, LLaVA and
reasoning models: terse, verbose, markdown, Chinese, chain of thought, refusals, echoed options.
"""

YN = {"A": "Yes.", "B": "No."}
DEF = {"A": "A scratch.", "B": "Contamination.", "C": "A large break.", "D": "A crack."}
LOC = {"A": "At the bottom", "B": "Around the edges", "C": "Around the center", "D": "Top left"}
OBJ = {"A": "A bottle.", "B": "A cable.", "C": "A screw.", "D": "A pill."}
EFF = {
    "A": "It may cause leakage.",
    "B": "It has no effect.",
    "C": "It improves grip.",
    "D": "It changes colour.",
}

CORPUS: list[tuple[str, dict[str, str], str | None]] = [
    ("A", YN, "A"),
    ("B", YN, "B"),
    ("B.", YN, "B"),
    ("A. Yes.", YN, "A"),
    ("B. No.", YN, "B"),
    ("(B)", YN, "B"),
    ("Answer: A", YN, "A"),
    ("Answer: B.", YN, "B"),
    ("1. Answer: B.", YN, "B"),
    ("The answer is A.", YN, "A"),
    ("**B**", YN, "B"),
    ("**Answer:** C", DEF, "C"),
    ("**C. A large break.**", DEF, "C"),
    ("Yes.", YN, "A"),
    ("No", YN, "B"),
    ("No, there is no defect.", YN, "B"),
    ("A crack.", DEF, "D"),
    ("A large break", DEF, "C"),
    ("contamination", DEF, "B"),
    ("Around the edges", LOC, "B"),
    ("The defect is located around the edges of the object.", LOC, "B"),
    ("A scratch is visible on the surface, so the answer is A.", DEF, "A"),
    ("A crack runs along the side. Answer: D", DEF, "D"),
    ("After comparing with the template, I notice a dark spot on the cap. The answer is B.", DEF, "B"),
    (
        "Comparing the query image to the template, there is a visible break in the rim.\n\nAnswer: C",
        DEF,
        "C",
    ),
    (
        "Looking at option A (A scratch) and option D (A crack), the mark is thin and branching, so D is correct.",
        DEF,
        "D",
    ),
    ("The correct answer is (D) A crack.", DEF, "D"),
    ("The correct option is B.", LOC, "B"),
    ("I would choose C.", LOC, "C"),
    ("I'd go with option A, since the product is clearly a bottle.", OBJ, "A"),
    ("Option B is correct.", EFF, "B"),
    ("Final answer: A", EFF, "A"),
    ("Final Answer: **D**", DEF, "D"),
    ("答案：B", YN, "B"),
    ("答案是 C。", DEF, "C"),
    ("选A", OBJ, "A"),
    ("根据图像对比，瓶口有明显破损，因此答案为C。", DEF, "C"),
    (
        "<think>The template shows a round opening. The query has a chip at the rim, which is a large break. "
        "Option A is a scratch, not matching.</think>\nC",
        DEF,
        "C",
    ),
    ("<think>Let me check each option. A? B? Hmm, I think it's D.</think>Answer: B", LOC, "B"),
    ("<think>\nThe object is a bottle seen from above.\n</think>\n\nA. A bottle.", OBJ, "A"),
    (
        "Let's think step by step. First, the template is a normal bottle. Second, the query image shows a "
        "crack near the neck. Third, this is a defect. Therefore the answer is A.",
        YN,
        "A",
    ),
    (
        "Step 1: Identify the object: a pill.\nStep 2: Compare.\nStep 3: No differences found.\n\nAnswer: B",
        YN,
        "B",
    ),
    ("Question 3: B", LOC, "B"),
    ("Question 1: A", YN, "A"),
    ("A. Yes\nB. No\n\nB", YN, "B"),
    ("A: Yes", YN, "A"),
    ("(A) Yes.", YN, "A"),
    ("[B]", YN, "B"),
    ("'D'", DEF, "D"),
    ("The answer is: **B. Around the edges**", LOC, "B"),
    ("Based on the image, the defect appears at the bottom of the object.", LOC, "A"),
    ("It may cause leakage.", EFF, "A"),
    ("The most likely effect is that it may cause leakage of the contents.", EFF, "A"),
    ("This product is a screw.", OBJ, "C"),
    ("I'm sorry, but I can't help with identifying defects in this image.", YN, None),
    ("I cannot determine the type of defect from the provided images.", DEF, None),
    ("Sorry, I am unable to view images.", LOC, None),
    ("抱歉，我无法判断。", YN, None),
    ("", YN, None),
    ("The image is too blurry to tell.", DEF, None),
    ("Both a scratch and a crack could describe this.", DEF, None),
    ("A", DEF, "A"),
    ("D) A crack", DEF, "D"),
    ("c", DEF, "C"),
    ("Answer: E", DEF, None),
    ("There appears to be a defect: a large break near the top.", DEF, "C"),
    ("**Defect Type:** A crack.\n\n**Reasoning:** The line is thin and jagged.", DEF, "D"),
    ("Answer:\nB", EFF, "B"),
    ("The answer is B because the defect is purely cosmetic.", EFF, "B"),
    # Lower-case letters count where nothing but punctuation follows them; the article "a" never does.
    ("b", YN, "B"),
    ("b.", YN, "B"),
    ("ANSWER: c", DEF, "C"),
    ("the answer is b", YN, "B"),
    ("The answer is a crack.", DEF, "D"),
    ("I think the answer is a scratch on the neck.", DEF, "A"),
    # A letter that ends the reply after a sentence.
    ("Looking at the query image, there is a defect. A", YN, "A"),
    ("The surface matches the template exactly.\nB", YN, "B"),
    # A yes/no question answered in words, and an option restated in other words.
    ("The object appears to be defect-free.", YN, "B"),
    ("There is a visible dent on the side of the can.", YN, "A"),
    ("The object looks intact and in good condition.", YN, "B"),
    ("It does not have any defects.", YN, "B"),
    ("The contents could leak out, causing leakage.", EFF, "A"),
    ("It is not a scratch; it is a crack.", DEF, None),
]
