#!/usr/bin/env python3
"""Build tests/data/grading/labelled.jsonl: labelled (gold, candidate) pairs for the answer grader.

Pure standard library and deterministic: running it twice writes byte-identical output.
Labels were assigned by hand from the mathematics and the MATH/GSM8K grading conventions
described in SOURCES.md (next to this file), never from what any grader (this project's or a
mined test suite's) returns.  Sources of every group of cases are listed in SOURCES.md.

Usage:  python3 tests/data/grading/build_labelled.py
"""
import json
import os
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "labelled.jsonl")
NL = "\n"

# ---- embedded data: MATH test solutions (hendrycks/math via shared/data/math/math_test.jsonl) ----
MATH = {
    'algebra/1': ('2', 'The denominator of the rational function factors into $x^2+x-6=(x-2)(x+3)$. Since the numerator is always nonzero, there is a vertical asymptote whenever the denominator is $0$, which occurs for $x = 2$ and $x = -3$.  Therefore, the graph has $\\boxed{2}$ vertical asymptotes.'),
    'algebra/2': ('\\frac{1}{2}', 'We want $\\pi R^{2}-\\pi r^{2}\\leq 5\\pi$. Dividing by $\\pi$, we have $R^{2}-r^{2}\\leq 5$. Factor the left-hand side to get $(R+r)(R-r)\\leq 5$. Substituting 10 for $R+r$ gives $10(R-r)\\leq 5 \\implies R-r \\leq 1/2$. So the maximum difference in the lengths of the radii is $\\boxed{\\frac{1}{2}}$.'),
    'algebra/2036': ('3\\sqrt{13}', 'We use the distance formula:  \\begin{align*}\n\\sqrt{(2 - (-4))^2 + ((-6) - 3)^2} &= \\sqrt{6^2 + (-9)^2}\\\\\n& = \\sqrt{36 + 81}\\\\\n& = \\sqrt{117} = \\boxed{3\\sqrt{13}}.\n\\end{align*}'),
    'counting_and_probability/337': ('2,\\!598,\\!960', "We're selecting 5 cards out of 52 total which is represented by ${{52}\\choose{5}}=\\boxed{2,\\!598,\\!960}$"),
    'algebra/77': ('(1,-2)', 'The given conditions imply that $$\nx^2 + ax + b = (x-a)(x-b) = x^2 -(a+b)x + ab,\n$$ so $$\na+b = -a \\quad\\text{and}\\quad ab = b.\n$$ Since $b \\neq 0$, the second equation implies that $a=1$. The first equation gives $b=-2$, so $(a,b) = \\boxed{(1,-2)}$.'),
    'geometry/279': ('90^\\circ', 'Since $WXYZ$ is a rectangle, angles $XYC$ and $WZB$ are right angles. Since the acute angles of a right triangle sum to $90^\\circ$, $m\\angle WBZ=90-m\\angle BWZ=90-26=64^\\circ$ and $m\\angle XCY=90-m\\angle CXY=90-64=26^\\circ$. In triangle $ABC$, the interior angles must sum to $180^\\circ$, so $m\\angle BAC=180-m\\angle WBZ-m\\angle XCY=180-64-26=\\boxed{90^\\circ}$.'),
    'algebra/1416': ('[-3,2]', 'First, we simplify the expression: $$\\sqrt{6-x-x^2}=\\sqrt{(2-x)(3+x)}$$ The expression inside the square root must be non-negative. The quadratic changes signs at the roots $2$ and $-3$ and is positive between the two values. Therefore, the domain of the expression is $\\boxed{[-3,2]}$.'),
    'algebra/628': ('[6,\\infty)', 'We have $$F(x) = \\begin{cases}\n-(x+1)-(x-5) &\\text{if }x<-1 \\\\\n(x+1)-(x-5) &\\text{if }-1\\le x<5 \\\\\n(x+1)+(x-5) &\\text{if }x\\ge 5\n\\end{cases}.$$Simplifying, we have $$F(x) = \\begin{cases}\n4-2x &\\text{if }x<-1 \\\\\n6 &\\text{if }-1\\le x<5 \\\\\n2x-4 &\\text{if }x\\ge 5\n\\end{cases}.$$For $x<-1,$ the function $4-2x$ achieves all values in $(6,\\infty),$ and for $x\\ge 5,$ the function $2x-4$ achieves all values in $[6,\\infty).$Thus, the range of $F(x)$ is $\\boxed{[6,\\infty)}.$'),
    'algebra/318': ('(-\\infty,0)\\cup (0,\\infty)', 'Every real number can be expressed in the form $1-x$ for some real $x$, and every real number except $0$ can be expressed as the reciprocal of some real number. Therefore, the range of $f(x)=\\frac{1}{1-x}$ consists of all real numbers except $0$. In interval notation, this is $\\boxed{(-\\infty,0)\\cup (0,\\infty)}$.'),
    'algebra/851': ('-\\sqrt{x-2}+2', 'We want to have that $f(f(x))=x$ for every $x.$ Since $f(f(2))=2,$ we know $f$ is its own inverse at $x=2,$ so we can restrict our attention to $x\\neq 2.$\n\nSince $f$ applied to any number less than $2$ returns a number greater than $2,$ and we can get all numbers greater than $2$ this way, applying $f$ to any number greater than $2$ must give a number less than $2.$ Therefore $k(x)<2$ for any $x>2.$\n\nIf $x>2$ and $f$ is its own inverse then \\[x=f(f(x))=f(k(x))=2+\\left(k(x)-2\\right)^2,\\]where in the last step we used that $k(x)<2.$ Subtracting $2$ from both sides gives \\[\\left(k(x) - 2\\right)^2 = x-2.\\]Next, we recall that we must have $k(x) < 2,$ so $k(x) - 2$ must be the negative number whose square is $x-2.$  That is, we have $k(x) - 2 = -\\sqrt{x-2}.$\n\nSolving this for $k(x)$ gives  \\[k(x)=\\boxed{-\\sqrt{x-2}+2}.\\]'),
    'precalculus/67': ('\\begin{pmatrix} 7 & 1 \\\\ -1 & -3 \\end{pmatrix}', 'In general, $(\\mathbf{A} \\mathbf{B})^{-1} = \\mathbf{B}^{-1} \\mathbf{A}^{-1}$ (not $\\mathbf{A}^{-1} \\mathbf{B}^{-1}$), which is\n\\[\\begin{pmatrix} 2 & -1 \\\\ -1 & 3 \\end{pmatrix} \\begin{pmatrix} 4 & 0 \\\\ 1 & -1 \\end{pmatrix} = \\boxed{\\begin{pmatrix} 7 & 1 \\\\ -1 & -3 \\end{pmatrix}}.\\]'),
    'precalculus/12': ('\\begin{pmatrix} 11 \\\\ -36 \\\\ -3 \\end{pmatrix}', 'We have that\n\\[\\begin{pmatrix} 3 & 1 & 0 \\\\ -7 & 4 & 2 \\\\ 0 & 5 & -1 \\end{pmatrix} \\begin{pmatrix} 4 \\\\ -1 \\\\ -2 \\end{pmatrix} = \\begin{pmatrix} (3)(4) + (1)(-1) + (0)(-2) \\\\ (-7)(4) + (4)(-1) + (2)(-2) \\\\ (0)(4) + (5)(-1) + (-1)(-2) \\end{pmatrix} = \\boxed{\\begin{pmatrix} 11 \\\\ -36 \\\\ -3 \\end{pmatrix}}.\\]'),
    'precalculus/26': ('\\begin{pmatrix} 5/3 \\\\ 5/3 \\\\ 4/3 \\end{pmatrix}', 'The line containing $\\mathbf{a}$ and $\\mathbf{b}$ can be parameterized by\n\\[\\mathbf{c} = \\mathbf{a} + t (\\mathbf{b} - \\mathbf{a}) = \\begin{pmatrix} 7 - 4t \\\\ -1 + 2t \\\\ 4 - 2t \\end{pmatrix}.\\]Since $\\mathbf{b}$ bisects the angle between $\\mathbf{a}$ and $\\mathbf{c},$ the angle between $\\mathbf{a}$ and $\\mathbf{b}$ must be equal to the angle between $\\mathbf{b}$ and $\\mathbf{c}.$  Thus,\n\\[\\frac{\\mathbf{a} \\cdot \\mathbf{b}}{\\|\\mathbf{a}\\| \\|\\mathbf{b}\\|} = \\frac{\\mathbf{b} \\cdot \\mathbf{c}}{\\|\\mathbf{b}\\| \\|\\mathbf{c}\\|}.\\]Then $\\frac{\\mathbf{a} \\cdot \\mathbf{b}}{\\|\\mathbf{a}\\|} = \\frac{\\mathbf{b} \\cdot \\mathbf{c}}{\\|\\mathbf{c}\\|},$ so\n\\[\\frac{\\begin{pmatrix} 7 \\\\ -1 \\\\ 4 \\end{pmatrix} \\cdot \\begin{pmatrix} 3 \\\\ 1 \\\\ 2 \\end{pmatrix}}{\\left\\| \\begin{pmatrix} 7 \\\\ -1 \\\\ 4 \\end{pmatrix} \\right\\|} = \\frac{\\begin{pmatrix} 3 \\\\ 1 \\\\ 2 \\end{pmatrix} \\cdot \\begin{pmatrix} 7 - 4t \\\\ -1 + 2t \\\\ 4 - 2t \\end{pmatrix}}{\\left\\| \\begin{pmatrix} 7 - 4t \\\\ -1 + 2t \\\\ 4 - 2t \\end{pmatrix} \\right\\|}.\\]Hence,\n\\[\\frac{28}{\\sqrt{66}} = \\frac{28 - 14t}{\\sqrt{(7 - 4t)^2 + (-1 + 2t)^2 + (4 - 2t)^2}}.\\]Then $28 \\sqrt{24t^2 - 76t + 66} = (28 - 14t) \\sqrt{66}.$  We can divide both sides by 14, to get $2 \\sqrt{24t^2 - 76t + 66} = (2 - t) \\sqrt{66}.$\nSquaring both sides, we get\n\\[4(24t^2 - 76t + 66) = (4 - 4t + t^2) 66.\\]This simplifies to $30t^2 - 40t = 0,$ which factors as $10t(3t - 4) = 0.$  The root $t = 0$ corresponds to the vector $\\mathbf{a},$ so $t = \\frac{4}{3},$ and\n\\[\\mathbf{c} = \\begin{pmatrix} 7 - 4 \\cdot \\frac{4}{3} \\\\ -1 + 2 \\cdot \\frac{4}{3} \\\\ 4 - 2 \\cdot \\frac{4}{3} \\end{pmatrix} = \\boxed{\\begin{pmatrix} 5/3 \\\\ 5/3 \\\\ 4/3 \\end{pmatrix}}.\\]'),
    'precalculus/525': ('\\begin{pmatrix} 1/\\sqrt{2} & 1/\\sqrt{2} \\\\ -1/\\sqrt{2} & 1/\\sqrt{2} \\end{pmatrix}', 'The transformation that rotates about the origin by an angle of $45^\\circ$ clockwise takes $\\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix}$ to $\\begin{pmatrix} 1/\\sqrt{2} \\\\ -1/\\sqrt{2} \\end{pmatrix}$ and $\\begin{pmatrix} 0 \\\\ 1 \\end{pmatrix}$ to $\\begin{pmatrix} 1/\\sqrt{2} \\\\ 1/\\sqrt{2} \\end{pmatrix},$ so the matrix is\n\\[\\boxed{\\begin{pmatrix} 1/\\sqrt{2} & 1/\\sqrt{2} \\\\ -1/\\sqrt{2} & 1/\\sqrt{2} \\end{pmatrix}}.\\]'),
    'precalculus/504': ('\\begin{pmatrix} 0 & 0 & 0 \\\\ 0 & 1 & 0 \\\\ 0 & 0 & 1 \\end{pmatrix}', 'The projection $\\mathbf{P}$ takes $\\begin{pmatrix} x \\\\ y \\\\ z \\end{pmatrix}$ to $\\begin{pmatrix} 0 \\\\ y \\\\ z \\end{pmatrix}.$\n\n[asy]\nimport three;\n\nsize(180);\ncurrentprojection = perspective(6,3,2);\n\ntriple I = (1,0,0), J = (0,1,0), K = (0,0,1), O = (0,0,0);\ntriple V = (2.2,2.5,2.5), W = (0,2.5,2.5);\n\ndraw(V--W,dashed);\ndraw(O--V, red, Arrow3(6));\ndraw(O--W,blue, Arrow3(6));\ndraw(O--3*I, Arrow3(6));\ndraw(O--3*J, Arrow3(6));\ndraw(O--3*K, Arrow3(6));\n\nlabel("$x$", 3.2*I);\nlabel("$y$", 3.2*J);\nlabel("$z$", 3.2*K);\nlabel("$\\mathbf{v}$", V, NW);\nlabel("$\\mathbf{w}$", W, NE);\n[/asy]\n\nThus,\n\\[\\mathbf{P} \\mathbf{i} = \\begin{pmatrix} 0 \\\\ 0 \\\\ 0 \\end{pmatrix}, \\quad \\mathbf{P} \\mathbf{j} = \\begin{pmatrix} 0 \\\\ 1 \\\\ 0 \\end{pmatrix}, \\quad \\mathbf{P} \\mathbf{k} = \\begin{pmatrix} 0 \\\\ 0 \\\\ 1 \\end{pmatrix},\\]so\n\\[\\mathbf{P} = \\boxed{\\begin{pmatrix} 0 & 0 & 0 \\\\ 0 & 1 & 0 \\\\ 0 & 0 & 1 \\end{pmatrix}}.\\]'),
    'precalculus/383': ('\\begin{pmatrix} 3 & 2 \\\\ 0 & -7 \\end{pmatrix}', 'In general, $\\mathbf{M} \\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix}$ is the first column of $\\mathbf{M}$, and $\\mathbf{M} \\begin{pmatrix} 0 \\\\ 1 \\end{pmatrix}$ is the second column of $\\mathbf{M}$, so\n\\[\\bold{M} = \\boxed{\\begin{pmatrix} 3 & 2 \\\\ 0 & -7 \\end{pmatrix}}.\\]'),
    'precalculus/128': ('\\begin{pmatrix} 6 \\\\ -15 \\end{pmatrix}', 'Since $(-3) \\begin{pmatrix} 4 \\\\ 7 \\end{pmatrix} = \\begin{pmatrix} -12 \\\\ -21 \\end{pmatrix},$ the scale factor of the dilation is $-3.$  So the vector $\\begin{pmatrix} -2 \\\\ 5 \\end{pmatrix}$ is taken to $\\boxed{\\begin{pmatrix} 6 \\\\ -15 \\end{pmatrix}}.$'),
    'algebra/1689': ('C', 'If we simplify all of the quantities and make them have a base of 2, it will be easier to compare the values.\n$$\\sqrt{2}=2^{\\frac{1}{2}}$$ $$\\sqrt[4]{4}=4^{\\frac{1}{4}}=(2^2)^{\\frac{1}{4}}=2^{2\\cdot{\\frac{1}{4}}}=2^{\\frac{1}{2}}$$ $$\\sqrt[8]{8}=(2^3)^{\\frac{1}{8}}=2^{3\\cdot{\\frac{1}{8}}}=2^{\\frac{3}{8}}$$\n\nThe first two quantities are equal, while the third quantity is less than the first two. So, our answer is $\\sqrt[8]{8},$ or $\\boxed{C}.$'),
    'number_theory/170': ('A', 'The pattern repeats with every 8 letters, so we can determine the letter in the $n$th position by finding the remainder when $n$ is divided by 8.  We can check that 2008 is a multiple of 8. That means 2010 has a remainder of 2 when divided by 8. The letter in the $2010$th position will be the same as the letter in the second position of the pattern, which is $\\boxed{A}$.'),
    'precalculus/195': ('\\text{(C)}', 'Note that\n\\[y = \\cos 2t = 2 \\cos^2 t - 1 = 2x^2 - 1,\\]so all the plotted points lie on a parabola.  The answer is $\\boxed{\\text{(C)}}.$'),
    'precalculus/1148': ('D', "By Vieta's formulas, $\\tan A + \\tan B = -C$ and $\\tan A \\tan B = D.$  Then from the angle addition formula,\n\\[\\tan (A + B) = \\frac{\\tan A + \\tan B}{1 - \\tan A \\tan B} = -\\frac{C}{1 - D}.\\]We write the expression we are interested in, in terms of $\\tan (A + B)$:\n\\begin{align*}\n&\\sin^2 (A + B) + C \\sin (A + B) \\cos (A + B) + D \\cos^2 (A + B) \\\\\n&= \\cos^2 (A + B) \\tan^2 (A + B) + C \\cos^2 (A + B) \\tan (A + B) + D \\cos^2 (A + B) \\\\\n&= \\cos^2 (A + B) (\\tan^2 (A + B) + C \\tan (A + B) + D) \\\\\n&= \\frac{\\cos^2 (A + B)}{\\sin^2 (A + B) + \\cos^2 (A + B)} (\\tan^2 (A + B) + C \\tan (A + B) + D) \\\\\n&= \\frac{1}{\\tan^2 (A + B) + 1} \\cdot (\\tan^2 (A + B) + C \\tan (A + B) + D).\n\\end{align*}Then\n\\begin{align*}\n&\\frac{1}{\\tan^2 (A + B) + 1} \\cdot (\\tan^2 (A + B) + C \\tan (A + B) + D) \\\\\n&= \\frac{1}{(-\\frac{C}{1 - D})^2 + 1} \\cdot \\left( \\left( -\\frac{C}{1 - D} \\right)^2 - C \\cdot \\frac{C}{1 - D} + D \\right) \\\\\n&= \\frac{(1 - D)^2}{(1 - D)^2 + C^2} \\cdot \\frac{D (C^2 + (1 - D)^2)}{(1 - D)^2} \\\\\n&= \\boxed{D}.\n\\end{align*}"),
    'intermediate_algebra/169': ('\\text{A,D}', 'A diagram represents the graph of a function if and only if every vertical line intersects the graph at most once.  The only diagrams that have this property are $\\boxed{\\text{A,D}}.$'),
    'algebra/1820': ('44\\%', "Since we're dealing with percentages, the actual dimensions do not matter. Let $l$ and $w$ represent the dimensions of the TV screen. The current area is $lw$. If we increase $l$ by $20\\%$, we end up with $l\\left(1+\\frac{20}{100}\\right)=l\\left(\\frac{10}{10}+\\frac{2}{10}\\right)=\\frac{12}{10}l$. Increasing the width results in $\\frac{12}{10}w$. The new area is $\\frac{12}{10}l\\times\\frac{12}{10}w=\\frac{144}{100}lw=lw\\left(1+\\frac{44}{100}\\right)$. The area increases by $\\boxed{44\\%}$."),
    'prealgebra/1400': ('28\\%', 'If its initial value was $x$, after Monday, its value is $.9x$, and after a further $20\\%$ loss, its value becomes $.8\\cdot .9x = .72x$, making for a total loss of $\\boxed{28\\%}$.'),
    'geometry/1032': ('7.2\\%', 'Without loss of generality, let the side length of the hexagon be 1 unit. Also let $u$ be the length of each of the equal sides in the removed isosceles triangles.  Define points $A$, $B$, $C$, $D$, $E$, and $F$ as shown in the diagram.  Triangle $CDB$ is a 30-60-90 triangle, so $CD=u/2$ and $DB=u\\sqrt{3}/2$.  Also, $AB=1-2u$ because $CF=1$ and $CB=AF=u$.  For the resulting dodecagon to be regular, we must have $AB=2\\cdot BD$.  We find \\begin{align*}\n1-2u&=u\\sqrt{3} \\implies \\\\\n1&=2u+u\\sqrt{3} \\implies \\\\\n1&=u(2+\\sqrt{3}) \\implies \\\\\n\\frac{1}{2+\\sqrt{3}}&=u.\n\\end{align*} Multiplying numerator and denominator by $2-\\sqrt{3}$ to rationalize the denominator, we get $u=2-\\sqrt{3}$.  The area of a regular hexagon with side length $s$ is $3s^2\\sqrt{3}/2$ so the area of the hexagon is $3\\sqrt{3}/2$.  The removed area is $6\\times \\frac{1}{2}(CD)(2\\cdot BD)=3u^2\\sqrt{3}/2$.  Therefore, the fraction of area removed is $u^2$, which to the nearest tenth of a percent is $0.072=\\boxed{7.2\\%}$. [asy]\nsize(250);\nreal r = sqrt(6-3*sqrt(3));\npair A=r*dir(15), B=r*dir(45), C=dir(60), D=sqrt(3)/2*dir(60), Ep=(0,0), F=dir(0);\npair[] dots = {A,B,C,D,Ep,F};\ndot(dots);\nlabel("$A$",A,A);\nlabel("$B$",B,B);\nlabel("$C$",C,C);\nlabel("$D$",D,1.6*(W+0.3*SW));\nlabel("$E$",Ep,SW);\nlabel("$F$",F,E);\nint i;\nfor(i=0;i<=5;++i)\n\n{\n\ndraw(dir(60*i)--dir(60*(i+1)));\n\n}\nfor(i=0;i<=11;++i)\n\n{\n\ndraw(r*dir(15+30*i)--r*dir(15+30*(i+1)));\n\n}\n\ndraw((0,0)--dir(60));\nlabel("$u$",dir(60)+0.12*SE);\nlabel("$1-2u$",dir(30));[/asy]'),
    'prealgebra/1440': ('198\\%', 'Suppose each test is worth $x$ points.  Then on the tests Sallie found, she has a total of $.83x + .96x + .81 x + .82x = 3.42 x$ points.  In all, she earned $6\\cdot .9x = 5.4 x$ points.  Thus, on the two remaining tests she scored $1.98x$ points, which is a total of $\\boxed{198\\%}$.'),
    'algebra/2329': ('19 \\text{ and }43', 'Call the primes $p$ and $q$. $1488=p^2-q^2=(p-q)\\cdot(p+q)$. If $p$ or $q$ was $2$, $p^2-q^2$ would be odd, so $p$ and $q$ are both odd numbers that are less than $50$. That means $p-q$ and $p+q$ are both even numbers that are less than $100$. $1488=2^4\\cdot3\\cdot31$, so $p+q$ or $p-q$ must be divisible by $31$. The only even multiple of $31$ that is less than $100$ is $62$ so one must equal $62$, and the other must be $1488/62=24$. So, $p=\\frac{62+24}{2}=43$ and $q=\\frac{62-24}{2}=19$. So, the primes are $\\boxed{19 \\text{ and }43}$.'),
    'algebra/1349': ('\\text{Evelyn}', "Evelyn covered more distance in less time than Briana, Debra and Angela, so her average speed is greater than any of their average speeds. Evelyn went almost as far as Carla in less than half the time that it took Carla, so Evelyn's average speed is also greater than Carla's. Therefore, $\\boxed{\\text{Evelyn}}$ is our answer."),
    'intermediate_algebra/10': ('\\text{neither}', 'Note that $f(1) = 3$ and $f(-1) = 3^{-1} = \\frac{1}{3}.$  Since $f(-1)$ is not equal to $f(1)$ or $-f(1),$ $f(x)$ is $\\boxed{\\text{neither}}$ even nor odd.'),
    'intermediate_algebra/300': ('\\text{circle}', 'This is the equation of a $\\boxed{\\text{circle}}$ with center $(3,0)$ and radius $\\sqrt{10}$.'),
    'algebra/2359': ('\\text{June 20}', 'On June $n$th, Connie will do $25 + 4(n-1)$ sit-ups.  In this problem, we are trying to find the smallest positive integer $n$ such that \\[25 + 4(n-1) > 100.\\]  Simplifying the inequality yields $25+4n-4>100$, or $4n>79$.  The smallest positive integer $n$ that satisfies this simplified inequality is $n=20$; hence, Connie will do more than 100 sit-ups in one day on $\\boxed{\\text{June 20}}$.'),
    'algebra/2664': ('\\text{Monday}', 'If $n$ days have passed since Sunday, then the total number of cents in her bank account is $1+2+\\cdots+2^n$. This is a geometric series with first term 1, common ratio 2 and $n+1$ terms. Hence the sum is: $$1+2+\\cdots+2^n = \\frac{1-2^{n+1}}{1-2} = 2^{n+1}-1.$$If this is greater than $500$ (i.e. if the total amount of money in the account is more than $\\$5$) then $2^{n+1}-1\\ge 500$, so $2^{n+1}\\ge 501$. The smallest power of 2 that is greater than 501 is $2^9$. Thus the first time there is more than $\\$5$ in the bank account occurs after $n=8$ days. This is 8 days away from Sunday, so the day of the week is $\\boxed{\\text{Monday}}$.'),
    'geometry/734': ('\\text{13}', 'Let downtown St. Paul, downtown Minneapolis, and the airport be located at $S$, $M$, and $A$, respectively. Then $\\triangle MAS$ has a right angle at $A$, so by the Pythagorean Theorem, \\[\nMS= \\sqrt{10^{2}+8^{2}}= \\sqrt{164}\\approx 12.8.\n\\] Therefore, the distance between the two downtowns to the nearest mile is  $\\boxed{\\text{13}}$ miles.'),
    'algebra/1900': ('9\\text{ a.m.}', '2 p.m. New York time is noon in Denver.  45 hours past noon is 21 hours past noon the next day, which is 9 a.m. the day after that.  Think about it this way - 48 hours would mean two full days, and 45 hours is 3 hours less than that, thus, 3 hours before noon is $\\boxed{9\\text{ a.m.}}$'),
    'algebra/2465': ('\\text{VW}', 'To be part of the graph of a function, a figure must have at most one point of intersection with any vertical line. Only two letters (as drawn in the problem) have this property: $\\textsf{V}$ and $\\textsf{W}.$ (Following the instructions, your answer should be formatted as $\\boxed{\\text{VW}}.$)'),
    'geometry/37': ('25^\\circ', 'Note that $\\angle AOC = 180^\\circ - 50^\\circ = 130^\\circ$.  Because triangle $AOC$ is isosceles, $\\angle CAB = (180^\\circ - 130^\\circ)/2 = \\boxed{25^\\circ}$.\n\n[asy]\nimport graph;\n\nunitsize(2 cm);\n\npair O, A, B, C;\n\nO = (0,0);\nA = (-1,0);\nB = (1,0);\nC = dir(50);\n\ndraw(Circle(O,1));\ndraw(B--A--C--O);\n\nlabel("$A$", A, W);\nlabel("$B$", B, E);\nlabel("$C$", C, NE);\nlabel("$O$", O, S);\n[/asy]'),
    'algebra/82': ('1599 \\text{ dollars}', 'She would get $20000 \\cdot 0.06=1200$ dollars per year from the simple interest. This gives her $20000+4\\cdot1200=24800$ dollars in the end.\n\nFor the compounded interest, we use the formula $A=P\\left(1+\\frac{r}{n}\\right)^{nt}$, where $A$ is the end balance, $P$ is the principal, $r$ is the interest rate, $t$ is the number of years, and $n$ is the number of times compounded in a year. This equation represents the idea that the interest is compounded every $1/n$ years with a rate of $r/n$ each time. Substituting the information given, we get $$A=20000\\left(1+\\frac{0.07}{4}\\right)^{4 \\cdot 4}=20000\\left(1+\\frac{0.07}{4}\\right)^{16} \\approx 26399.$$Therefore, she should choose the compounded interest and earn $26399-24800=\\boxed{1599 \\text{ dollars}}$ more.'),
    'algebra/1755': ('\\$16,\\!386.16', 'In the first quarter, Paula earns $\\frac{0.10}{4}(\\$10,\\!000)$ in interest, so her investment is worth $\\$10,\\!000 +\\frac{0.10}{4}(\\$10,\\!000) = \\left(1 + \\frac{0.10}{4}\\right)(\\$10,\\!000)$. Similarly, the value of her investment is multiplied by $1 + \\frac{0.10}{4}$ each quarter, so after 5 years, which is $5\\cdot 4 = 20$ quarters, her investment is worth \\[\\left(1 + \\frac{0.10}{4}\\right)^{5\\cdot 4}(\\$10,\\!000) \\approx \\boxed{\\$16,\\!386.16}.\\]'),
    'counting_and_probability/825': ('-\\$0.50', 'The chance of winning the jackpot is $\\frac{1}{100000}$. The value of the jackpot is $\\$250000$. The expected winnings, minus the cost of the ticket is $E = \\frac{1}{100000} \\cdot \\$250000 - \\$3 = \\$2.50-\\$3.00 = \\boxed{-\\$0.50}$.'),
    'geometry/901': ('25 \\, \\text{km}', 'After travelling $13$ km north and $6$ km south, he has effectively traveled $7$ km north. In addition, he has traveled a total of $24$ km east. Applying the Pythagorean theorem, Bruce has ended up $\\sqrt{7^2+24^2} = \\boxed{25 \\, \\text{km}}$ from his origin.'),
    'algebra/2091': ('440\\text{ cm}^2', 'The initial square has area $1^2 = 1\\text{ cm}^2$. After ten minutes, the side length of the square will be $1 + 2\\cdot 10 = 21\\text{ cm}$. So, the last square has area $21^2 = 441\\text{ cm}^2$. So the difference in areas is $441 - 1 = \\boxed{440\\text{ cm}^2}$.'),
    'algebra/1569': ('\\frac{68}{3}\\text{ pounds}', 'Find the sum of the weights of a green and a red ball.\n\nAs before, we have $5g + 2r =10$ and $g+4r=7.$ Before solving this system of equations, we note that we seek $8g+8r,$ which equals $8(g+r).$  So, if we can find $g+r,$ we can find the total weight of the balls $\\emph{without finding the weight of each ball}.$ Looking at our equations, we see a total of $6g$ and $6r$ on the left, so adding the two equations can get us to $g+r.$ Adding the equations gives $6g+6r = 17,$ and dividing both sides by $6$ gives $$g+r = \\frac{17}{6}.$$ Therefore, we have $$8g+8r= 8(g+r) = 8\\cdot\\frac{17}{6} = \\boxed{\\frac{68}{3}\\text{ pounds}}.$$'),
    'geometry/8': ('\\frac{4}{3}\\pi', '[asy]\n\nsize(110); dotfactor=4; pen dps=linewidth(0.7)+fontsize(10); defaultpen(dps);\ndraw(scale(1,.2)*arc((0,0),1,0,180),dashed);\ndraw(scale(1,.2)*arc((0,0),1,180,360));\ndraw(Arc((0,0),1,0,180));\n\ndraw(Circle((0,.5),.5),heavycyan);\ndraw(scale(1,.2)*arc((0,2.5),.5,0,180),dashed+heavycyan);\ndraw(scale(1,.2)*arc((0,2.5),.5,180,360),heavycyan);\n\ndot((0,0)); dot((0,1));\nlabel("$B$",(0,0),SW); label("$A$",(0,1),NE);\n\n[/asy]\n\nLet $A$ be the point on the hemisphere where the top of the hemisphere touches the sphere, and let $B$ be the point on the hemisphere where the base of the hemisphere touches the sphere.  $AB$ is a diameter of the sphere and a radius of the hemisphere.  Thus, the diameter of the sphere is 2, so the radius of the sphere is 1 and the volume of the sphere is $\\frac{4}{3}\\pi (1^3)=\\boxed{\\frac{4}{3}\\pi}$.'),
    'geometry/249': ('8\\pi - 16', '[asy]\nreal y = .866025404;\ndraw((-1,-1)--(1, -1) -- (1, 1) -- (-1, 1)--cycle );\ndraw( Arc( (1,0), 1, 90, 270));\ndraw( Arc( (0,1), 1, 180, 360));\nfill((0,0)..(.5, y).. (1,1) --cycle, blue); fill((0,0)..(y, .5).. (1,1) --cycle, gray(0.7));\nlabel ("$A$", (-1,-1) , SW); label ("$B$", (1,-1) , SE); label ("$C$", (1,1) , NE); label ("$D$", (-1,1) , NW);\ndraw((0,0)--(1,0),blue+linewidth(.8));\nlabel ("$X$", (0,0) , SW); label ("$Y$", (1,0) , SE);\n[/asy]\n\nLet the intersection of the arcs be $X$.  Draw line $XC$, which divides the shaded region into two equal shaded regions, one blue and one grey.  We will calculate the area of the blue region and multiply it by 2 to yield the total shaded area.\n\nTo calculate the area of the blue region, notice that it is equal to the area of the quarter circle bounded by arc $CX$, centered at $Y$, minus the area of triangle $\\triangle CXY$.  The quarter circle has radius $8/2=4$ and area \\[\\frac{1}{4} \\cdot \\pi (4)^2 = 4\\pi.\\]The triangle has area \\[\\frac{1}{2} (4)(4) = 8.\\]Hence the blue region has area $4\\pi - 8$.  The entire shaded region has area twice this, which is $2(4\\pi-8) = \\boxed{8\\pi - 16}$.'),
    'counting_and_probability/105': ('6\\frac15', 'We can separate the fraction to get $\\frac{6!}{5!} +\\frac{4!}{5!}$. We can then simplify the quotient of factorials:\n\n\\begin{align*}\n\\frac{6!}{5!} +\\frac{4!}{5!} &= \\frac{6\\cdot5!}{5!} +\\frac{4!}{5\\cdot4!}\\\\\n&=6+\\frac15\\\\\n&=\\boxed{6\\frac15}.\n\\end{align*}'),
    'prealgebra/1729': ('1\\frac{1}{4}', 'Our ratio of garlic powder to people served is $\\frac{1 \\textnormal{ tablespoon}}{4 \\textnormal{ people}}$. We multiply this ratio by 80 people to get the number of tablespoons needed to serve 80 people, which is $\\frac{1}{4} \\cdot 80 = 20$ tablespoons. Converting this to cups, we have $20 \\textnormal{ tablespoons} \\cdot \\frac{1 \\textnormal{ cup}}{16 \\textnormal{ tablespoons}} = \\boxed{1\\frac{1}{4}}$ cups.'),
    'precalculus/807': ('\\left( 3, \\frac{\\pi}{2} \\right)', 'We have that $r = \\sqrt{0^2 + 3^2} = 3.$  Also, if we draw the line connecting the origin and $(0,3),$ this line makes an angle of $\\frac{\\pi}{2}$ with the positive $x$-axis.\n\n[asy]\nunitsize(0.8 cm);\n\ndraw((-0.5,0)--(3.5,0));\ndraw((0,-0.5)--(0,3.5));\ndraw(arc((0,0),3,0,90),red,Arrow(6));\n\ndot((0,3), red);\nlabel("$(0,3)$", (0,3), W);\ndot((3,0), red);\n[/asy]\n\nTherefore, the polar coordinates are $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$'),
    'algebra/1144': ('\\left(1,\\frac{9}{2}\\right)', 'The midpoint of $\\overline{PQ}$ is $\\displaystyle \\left(\\frac{5+(-3)}{2}, \\frac{3+6}{2}\\right) = \\boxed{\\left(1,\\frac{9}{2}\\right)}$.'),
    'algebra/2438': ('(-\\infty,-5]\\cup[5,\\infty)', 'Since we know that the terms inside any square root need to be greater than or equal to zero, both $x^2-16\\ge0$ and $\\sqrt{x^2-16}-3\\ge0$ must hold. Since the first inequality factors as $(x+4)(x-4)\\ge0$, the values of $x$ such that $x^2-16 \\ge 0$ is $x \\le -4$ or $x \\ge 4$. Next, we tackle the second inequality: \\begin{align*} \\sqrt{x^2-16}-3&\\ge0\n\\\\\\Leftrightarrow\\qquad \\sqrt{x^2-16}&\\ge3\n\\\\\\Leftrightarrow\\qquad x^2-16&\\ge9\n\\\\\\Leftrightarrow\\qquad x^2-25&\\ge0\n\\\\\\Leftrightarrow\\qquad (x+5)(x-5)&\\ge0\n\\end{align*}This tells us that the domain of $\\sqrt{\\sqrt{x^2-16}-3}$ is $x \\le -5$ or $x \\ge 5$. Since this is a subset of the domain we found for the first inequality, these values of $x$ also satisfy $x^2-16 \\ge 0$. Therefore, the domain of $f(x)$ is $x\\in\\boxed{(-\\infty,-5]\\cup[5,\\infty)}$'),
    'algebra/126': ('(15,-11)', 'Applying the midpoint formula gives us $$\\left(\\frac{-9+x}{2},\\frac{1+y}{2}\\right)=(3,-5).$$Solving $\\frac{-9+x}{2} =3$ for $x$ and solving $\\frac{1+y}{2}=-5$ for $y$, we find the coordinates $(x,y)$ to be $\\boxed{(15,-11)}$.'),
    'algebra/1810': ('\\left[\\frac{1}{2}, \\frac{4}{3}\\right]', 'We need $-6x^2+11x-4\\geq 0$.  The quadratic factors as \\[(2x-1)(-3x+4) \\ge 0.\\] Thus the zeroes of the quadratic are at $\\frac{1}{2}$ and $\\frac{4}{3}$.  Since the quadratic faces downward, it is nonnegative between the zeroes.  So the domain is $x \\in \\boxed{\\left[\\frac{1}{2}, \\frac{4}{3}\\right]}$.'),
    'algebra/2486': ('\\left(\\frac{3}{5},\\frac{8}{3}\\right]', 'We take the inequalities one at a time. Adding $144$ to both sides of the first inequality, we get $$144\\ge 54p,$$implying $$\\frac{144}{54}\\ge p.$$Reducing the fraction and switching the sides (along with the direction of the inequality), we get $p\\le\\frac{8}{3}$.\n\n\nTo solve the second inequality, we add $20p$ to both sides: $$20p > 12$$Dividing both sides by $20$, we get $$p>\\frac{12}{20}.$$Reducing the fraction gives $p>\\frac{3}{5}$.\n\n\nWe are looking for $p$ which satisfy both inequalities. The intersection of the solutions above is $\\boxed{\\left(\\frac{3}{5},\\frac{8}{3}\\right]}$.'),
    'precalculus/584': ('\\left( \\frac{4}{3}, -\\frac{1}{3} \\right)', 'Since $AP:PB = 1:4,$ we can write\n\\[\\frac{\\overrightarrow{A} - \\overrightarrow{P}}{1} = \\frac{\\overrightarrow{B} - \\overrightarrow{P}}{4}.\\]Isolating $\\overrightarrow{P},$ we find\n\\[\\overrightarrow{P} = \\frac{4}{3} \\overrightarrow{A} - \\frac{1}{3} \\overrightarrow{B}.\\]Thus, $(t,u) = \\boxed{\\left( \\frac{4}{3}, -\\frac{1}{3} \\right)}.$'),
    'precalculus/323': ('y = 2x + 3', 'We have that $\\mathbf{M} \\begin{pmatrix} 2 \\\\ -1 \\end{pmatrix} = \\begin{pmatrix} 9 \\\\ 3 \\end{pmatrix}$ and $\\mathbf{M} \\begin{pmatrix} 1 \\\\ -3 \\end{pmatrix} = \\begin{pmatrix} 7 \\\\ -1 \\end{pmatrix}.$  Then $\\mathbf{M} \\begin{pmatrix} 6 \\\\ -3 \\end{pmatrix} = \\begin{pmatrix} 27 \\\\ 9 \\end{pmatrix},$ so\n\\[\\mathbf{M} \\begin{pmatrix} 6 \\\\ -3 \\end{pmatrix} - \\mathbf{M} \\begin{pmatrix} 1 \\\\ -3 \\end{pmatrix} = \\begin{pmatrix} 27 \\\\ 9 \\end{pmatrix} - \\begin{pmatrix} 7 \\\\ -1 \\end{pmatrix}.\\]This gives us $\\mathbf{M} \\begin{pmatrix} 5 \\\\ 0 \\end{pmatrix} = \\begin{pmatrix} 20 \\\\ 10 \\end{pmatrix},$ so\n\\[\\mathbf{M} \\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix} = \\begin{pmatrix} 4 \\\\ 2 \\end{pmatrix}.\\]Then\n\\[\\mathbf{M} \\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix} - \\mathbf{M} \\begin{pmatrix} 1 \\\\ -3 \\end{pmatrix} = \\begin{pmatrix} 4 \\\\ 2 \\end{pmatrix} - \\begin{pmatrix} 7 \\\\ -1 \\end{pmatrix}.\\]This gives us $\\mathbf{M} \\begin{pmatrix} 0 \\\\ 3 \\end{pmatrix} = \\begin{pmatrix} -3 \\\\ 3 \\end{pmatrix},$ so\n\\[\\mathbf{M} \\begin{pmatrix} 0 \\\\ 1 \\end{pmatrix} = \\begin{pmatrix} -1 \\\\ 1 \\end{pmatrix}.\\]Finally,\n\\begin{align*}\n\\mathbf{M} \\begin{pmatrix} 1 \\\\ 3 \\end{pmatrix} &= \\mathbf{M} \\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix} + 3 \\mathbf{M} \\begin{pmatrix} 0 \\\\ 1 \\end{pmatrix} \\\\\n&= \\begin{pmatrix} 4 \\\\ 2 \\end{pmatrix} + 3 \\begin{pmatrix} -1 \\\\ 1 \\end{pmatrix} \\\\\n&= \\begin{pmatrix} 1 \\\\ 5 \\end{pmatrix}.\n\\end{align*}Since $\\begin{pmatrix} 0 \\\\ 1 \\end{pmatrix}$ and $\\begin{pmatrix} 1 \\\\ 3 \\end{pmatrix}$ lie on the line $y = 2x + 1,$ we want to compute the equation of the line through $\\begin{pmatrix} -1 \\\\ 1 \\end{pmatrix}$ and $\\begin{pmatrix} 1 \\\\ 5 \\end{pmatrix}.$  The equation of this line is $\\boxed{y = 2x + 3}.$'),
    'precalculus/659': ('5x - 7y + 11z + 4 = 0', 'Let $\\mathbf{a} = \\begin{pmatrix} 0 \\\\ -1 \\\\ -1 \\end{pmatrix},$ $\\mathbf{b} = \\begin{pmatrix} -4 \\\\ 4 \\\\ 4 \\end{pmatrix},$ and $\\mathbf{c} = \\begin{pmatrix} 4 \\\\ 5 \\\\ 1 \\end{pmatrix}.$  Then the normal vector of the plane is orthogonal to both\n\\[\\mathbf{b} - \\mathbf{a} = \\begin{pmatrix} -4 \\\\ 5 \\\\ 5 \\end{pmatrix}\\]and\n\\[\\mathbf{c} - \\mathbf{a} = \\begin{pmatrix} 4 \\\\ 6 \\\\ 2 \\end{pmatrix}.\\]So to compute the normal vector, we take the cross product of these vectors:\n\\[\\begin{pmatrix} -4 \\\\ 5 \\\\ 5 \\end{pmatrix} \\times \\begin{pmatrix} 4 \\\\ 6 \\\\ 2 \\end{pmatrix} = \\begin{pmatrix} -20 \\\\ 28 \\\\ -44 \\end{pmatrix}.\\]We can scale this vector, and take $\\begin{pmatrix} 5 \\\\ -7 \\\\ 11 \\end{pmatrix}$ as the normal vector.  Then the equation of the plane is of the form\n\\[5x - 7y + 11z + D = 0.\\]Substituting the coordinates of any of the points, we find that the equation of the plane is $\\boxed{5x - 7y + 11z + 4 = 0}.$'),
    'algebra/293': ('36x \\sqrt{35x}', 'Writing everything in terms of prime factorizations, the given expression is  \\begin{align*}\n&\\sqrt{3 \\cdot 5 \\cdot 2^2 \\cdot 3 \\cdot 2^2 \\cdot 7 \\cdot 3^2 \\cdot x^3} \\\\\n& \\qquad = \\sqrt{(3^4 \\cdot 2^4 \\cdot x^2) \\cdot (5 \\cdot 7 \\cdot x)} \\\\\n& \\qquad = \\boxed{36x \\sqrt{35x}}.\n\\end{align*}'),
    'intermediate_algebra/1723': ('y = -\\frac{1}{2} x^2 + 4x - 6', 'Since the parabola has vertex $(4,2),$ the equation of the parabola is of the form\n\\[y - 2 = k(x - 4)^2.\\]Since the parabola passes through $(2,0),$ we can plug in $x = 2$ and $y = 0,$ to get\n\\[-2 = 4k,\\]so $k = -\\frac{1}{2}.$  Then\n\\[y - 2 = -\\frac{1}{2} (x - 4)^2 = -\\frac{1}{2} x^2 + 4x - 8,\\]so the equation of the parabola is $\\boxed{y = -\\frac{1}{2} x^2 + 4x - 6}.$'),
    'intermediate_algebra/992': ('y = x+3', 'Polynomial long division gives us\n\\[\n\\begin{array}{c|ccc}\n\\multicolumn{2}{r}{x} & +3 \\\\\n\\cline{2-4}\n2x-5 & 2x^2&+x&-13 \\\\\n\\multicolumn{2}{r}{2x^2} & -5x &   \\\\\n\\cline{2-3}\n\\multicolumn{2}{r}{0} & 6x &  -13 \\\\\n\\multicolumn{2}{r}{} & 6x & -15 \\\\\n\\cline{3-4}\n\\multicolumn{2}{r}{} & 0 &+  2 \\\\\n\\end{array}\n\\]Hence, we can write\n$$\\frac{2x^2+x-13}{2x-5} = x + 3 + \\frac{2}{2x-5}.$$So we can see that as $x$ becomes far from $0$, the graph of the function gets closer and closer to the line $\\boxed{y = x+3}.$'),
    'intermediate_algebra/61': ('-5, 1, 4', 'Let $s = x+y$ and $p = xy.$ We can write the given quantities in terms of $s$ and $p$ as follows: \\[\\begin{aligned} 7 &= x^2 + y^2 = (x+y)^2 - 2xy = s^2 - 2p, \\\\ 10 &= x^3 + y^3 = (x+y)^3 - 3xy(x+y) = s^3 - 3sp. \\end{aligned}\\]Now we solve for $s$ and $p.$ The first equation gives $p = \\frac{s^2-7}{2}.$ Substituting this into the second equation, we have \\[10 = s^3 - 3s\\left(\\frac{s^2-7}{2}\\right) \\]which simplifies to $s^3 - 21s + 20 =0.$ This factors as $(s-1)(s-4)(s+5)=0,$ so the possible values for $s$ are $\\boxed{-5, 1, 4}.$'),
    'algebra/2050': ('6, -2', 'We use the distance formula: $\\sqrt{ (4-1)^2 + (b-2)^2 } = 5$. Solving, we get $3^2 + (b-2)^2 = 5^2$. $(b-2)^2 = 16$, so $b-2=4$ or $b-2=-4$. Solving, we get that $b is one of \\boxed{6, -2}$.'),
    'counting_and_probability/875': ('210\\text{ ways}', 'There are $\\binom{10}{4}=\\boxed{210\\text{ ways}}$ to choose four of the answers to be the true answers.'),
}
# ---- embedded data: GSM8K test (openai/grade-school-math via shared/data/gsm8k/test.jsonl); (gold, chain) ----
GSM = {
    0: ('18', 'Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18 every day at the farmer’s market.'),
    1: ('3', 'It takes 2/2=1 bolt of white fiber\nSo the total amount of fabric is 2+1=3 bolts of fabric'),
    2: ('70000', 'The cost of the house and repairs came out to 80,000+50,000=$130,000\nHe increased the value of the house by 80,000*1.5=120,000\nSo the new value of the house is 120,000+80,000=$200,000\nSo he made a profit of 200,000-130,000=$70,000'),
    3: ('540', 'He sprints 3*3=9 times\nSo he runs 9*60=540 meters'),
    4: ('20', 'If each chicken eats 3 cups of feed per day, then for 20 chickens they would need 3*20=60 cups of feed per day.\nIf she feeds the flock 15 cups of feed in the morning, and 25 cups in the afternoon, then the final meal would require 60-15-25=20 cups of chicken feed.'),
    5: ('64', 'The discount price of one glass is 60/100 * 5 = $3.\nIf every second glass is cheaper, that means Kylar is going to buy 16 / 2 = 8 cheaper glasses.\nSo for the cheaper glasses, Kylar is going to pay 8 * 3 = $24.\nAnd for the regular-priced glasses, Kylar will pay 8 * 5 = $40.\nSo in total Kylar needs to pay 24 + 40 = $64 for the glasses he wants to buy.'),
    6: ('260', 'If Seattle has 20 sheep, Charleston has 4 * 20 sheep = 80 sheep\nToulouse has twice as many sheep as Charleston, which is 2 * 80 sheep = 160 sheep\nTogether, the three has 20 sheep + 160 sheep + 80 sheep = 260 sheep'),
    8: ('45', 'When he turned around he was 3*60=180 miles from home\nHe was only able to drive 4-2=2 hours in the first four hours\nIn half an hour he goes 30*.5=15 miles\nHe then drives another 2-.5=1.5 hours\nIn that time he goes 80*1.5=120 miles\nSo he drove 120+15=135 miles\nSo he is 180-135=45 miles away from home'),
    9: ('460', "Eliza is entitled to 45 -40 = 5 hours overtime pay.\nHer hourly rate for the overtime pay is $10 x 1.2 = $12.\nSo, Eliza will receive $12 x 5 =$60 for overtime pay.\nHer regular weekly earning is $10 x 40 = $400.\nThus, Eliza will receive a total of $400 + $60 = $460 for this week's work."),
    11: ('694', 'The total charge for the doughnuts was 3 x $68 = $204.\nThe total charge for the mini cupcakes was 2 x $80 = $160.\nThe total charge for the mini cheesecakes was 6 x $55 = $330.\nTherefore the total amount Toula paid for the pastries was $204 + $160 + $330 = $694.'),
    12: ('13', 'He makes $10.5 selling lemons each year because 7 x 1.5 = 10.5\nHe earns $7.5 each year from the lemon tree because 10.5 - 3 = 7.5\nIt will take 12 years to earn enough to pay off the tree because 90 / 7.5 = 12\nHe will make money in year 13 because 12 + 1 = 13'),
    17: ('57500', 'First find the total amount Jill makes per week teaching: $20/hour * 35 hours/week = $700/week\nThen find the total amount Jill makes per week coaching: $30/hour * 15 hours/week = $450/week\nThen add those two amounts to find the total amount Jill makes per week: $700/week + $450/week = $1150/week\nThen multiply that number by the number of weeks Jill works in a year to find her annual salary: $1150/week * 50 weeks/year = $57,500'),
    18: ('7', "She eats 3 eggs every day and there are 7 days in a week so she eats 3*7 = 21 eggs a week\nAfter 4 weeks she will have eaten 4*21 = 84 eggs\nThere are 12 eggs in 1 dozen and she'll eat 84 eggs so that's 84/12 = 7 dozen eggs"),
    21: ('14', "When Raymond's son was born Samantha was 23 - 6 = 17 years old.\nThus it has been 31 - 17 = 14 years since Raymond's son was born."),
    24: ('26', 'Let X be the original price of the book. The discounted price is X - X*25% = $19.50.\nCombining like terms, we get .75X = $19.50\nDividing both sides by .75, we get X = $26.'),
    26: ('243', '3 * (16.50 + 22.50 + 42) = $243\nMishka spent $243 on clothing.'),
    61: ('1430', 'The total cost of the broch was 500+800=$1300\nThe insurance was 1300*.1=$130\nSo she pays 1300+130=$1430'),
    146: ('2,125', 'The first set had 500 pieces, and the second set had 3 times as many as the first set, so the second set has 500*3=1500 pieces\nThe third set had one-quarter of the 500 pieces, so that means it had 500*.25= 125 pieces\nIn total, that means Johnny picked up 500 + 1500+ 125= 2125 blocks'),
    201: ('114,200', 'He makes 2000*52=$104,000 a year\nSo the raise is worth .05*104,000=$5200\nSo he makes 104,000+5200=$109,200 from his salary\nSo in total he made 109,200+5,000=$114,200'),
    230: ('276,000', 'The cars cost 20000*12=$240,000\nSo the tax came out to 240,000*.1=$24,000\nSo the cars cost 240,000+24,000=$264,000\nRegistration cost another 12*1000=12,000\nSo his total cost is 264,000+12,000=$276,000'),
}

# --------------------------------------------------------------------------------------------
# Sources (see SOURCES.md for the full citation table)
# --------------------------------------------------------------------------------------------
MV = "huggingface/Math-Verify"
SRCS = {
    "mv_all": MV + " tests/test_all.py @c69c41098215 (adapted)",
    "mv_boxed": MV + " tests/test_boxed.py @c69c41098215 (adapted)",
    "mv_numina": MV + " tests/test_numina_cases.py @a58500360397 (adapted)",
    "mv_ot": MV + " tests/test_open_thoughts.py @c69c41098215 (adapted)",
    "mv_yj": MV + " tests/test_yujianll.py @a58500360397 (adapted)",
    "mv_str": MV + " tests/test_string_extraction.py @a58500360397 (adapted)",
    "hm": "hendrycks/math modeling/math_equivalence_test.py @5f3bf91d1336 (adapted)",
    "qw": "QwenLM/Qwen2.5-Math evaluation/grader.py @29a82a8802e0 (_test_math_equal cases, adapted)",
    "vl": "volcengine/verl tests/utils/reward_score/test_numeric_canonicalization_on_cpu.py @d69068d2a32b (adapted)",
    "ar": "leandermaben/AReaL (fork of inclusionAI/AReaL) areal/tests/test_math_verify_reward.py @24f05fbf82f3 (adapted)",
    "hand": "hand-written",
}
PREFIX = {"mv": "mv", "hm": "hm", "qw": "qw", "vl": "vl", "ar": "ar", "hand": "hw", "math": "mt", "gsm": "gs"}


def src_text(key):
    if key.startswith("math:"):
        return ("MATH test/%s.json (shared/data/math/math_test.jsonl, from hendrycks/math); "
                "gold kept, candidate rewritten" % key[5:])
    if key.startswith("gsm:"):
        return ("GSM8K test line %d (shared/data/gsm8k/test.jsonl, from openai/grade-school-math); "
                "gold kept, candidate rewritten" % (int(key[4:]) + 1))
    return SRCS[key]


CASES = []


def add(srcs, ds, gold, cls, label, completion=None, answer=None):
    if isinstance(srcs, str):
        srcs = [srcs]
    assert (completion is None) != (answer is None)
    assert isinstance(label, bool)
    first = srcs[0].split(":")[0]
    prefix = PREFIX["mv" if first.startswith("mv") else first]
    CASES.append({
        "prefix": prefix, "dataset": ds, "gold": gold, "completion": completion, "answer": answer,
        "label": label, "class": cls, "source": " + ".join(src_text(s) for s in srcs),
    })


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _boxed_span(s):
    """(start, content_start, content_end, end) of the single \\boxed{...} in s."""
    i = s.index("\\boxed{")
    j = i + len("\\boxed{")
    depth = 1
    k = j
    while depth:
        if s[k] == "{":
            depth += 1
        elif s[k] == "}":
            depth -= 1
        k += 1
    return i, j, k - 1, k


def sol_plain(mid, cand=None):
    """MATH reference solution with its \\boxed{gold} replaced by the bare candidate."""
    s = MATH[mid][1]
    a, b, c, d = _boxed_span(s)
    return s[:a] + (s[b:c] if cand is None else cand) + s[d:]


def sol_boxed(mid, cand):
    """MATH reference solution with the boxed gold replaced by \\boxed{cand}."""
    s = MATH[mid][1]
    a, b, c, d = _boxed_span(s)
    return s[:a] + "\\boxed{" + cand + "}" + s[d:]


def gold_of(mid):
    return MATH[mid][0]


def FA(reason, cand):
    return reason + NL + "Final Answer: The final answer is $" + cand + "$. I hope it is correct."


def math_fa(mid, cand, keep_gold=False):
    """Minerva-style completion: solution text (box removed; the boxed value replaced by cand
    unless keep_gold) followed by the Minerva final-answer line with cand."""
    return FA(sol_plain(mid, None if keep_gold else cand), cand)


def BOX(reason, cand):
    return reason + " So the final answer is $\\boxed{" + cand + "}$."


def gsm_chain(k):
    return GSM[k][1]


# ============================================================================================
# final_answer_line  (Minerva "Final Answer: The final answer is $X$. I hope it is correct.")
# ============================================================================================
C = "final_answer_line"
add("math:algebra/1", "math", gold_of("algebra/1"), C, True, math_fa("algebra/1", "2"))
add("math:algebra/1", "math", gold_of("algebra/1"), C, False, math_fa("algebra/1", "3"))
add("math:algebra/2", "math", gold_of("algebra/2"), C, True, math_fa("algebra/2", "0.5"))
add("math:algebra/2", "math", gold_of("algebra/2"), C, False, math_fa("algebra/2", r"\frac{1}{4}"))
add("math:algebra/2036", "math", gold_of("algebra/2036"), C, True, math_fa("algebra/2036", r"3 \sqrt{13}"))
add("math:algebra/2036", "math", gold_of("algebra/2036"), C, False,
    math_fa("algebra/2036", r"3\sqrt{3}", keep_gold=True))
add("math:counting_and_probability/337", "math", gold_of("counting_and_probability/337"), C, True,
    math_fa("counting_and_probability/337", "2598960"))
add("math:counting_and_probability/337", "math", gold_of("counting_and_probability/337"), C, False,
    math_fa("counting_and_probability/337", "2,598,950"))
add("math:algebra/77", "math", gold_of("algebra/77"), C, True, math_fa("algebra/77", "(1, -2)"))
add("math:algebra/77", "math", gold_of("algebra/77"), C, False, math_fa("algebra/77", "(-2,1)"))
add("math:geometry/279", "math", gold_of("geometry/279"), C, True, math_fa("geometry/279", "90"))
add("math:geometry/279", "math", gold_of("geometry/279"), C, False, math_fa("geometry/279", r"64^\circ"))

R_CONG = (r"To find the integers congruent to 3 (mod 7), we find the remainder of each integer when divided by 7. "
          r"For 85 it is 1, for 49,479 it is 3, for -67 it is 4, for 12,000,003 it is 5 and for -3 it is 4. "
          r"The only integer congruent to 3 (mod 7) is 49,479, so we sum the remaining integers: "
          r"$85 + (-67) + 12,\!000,\!003 + (-3) = 12,\!000,\!018$.")
add(["mv_all", "hand"], "math", "12000023", C, True,
    r"To find the integers congruent to 3 (mod 7), we can find the remainder when each integer is divided by 7. "
    r"For 85, the remainder is $85 \mod 7 = 1$. For 49,479, the remainder is $49,\!479 \mod 7 = 3$. "
    r"For -67, the remainder is $-67 \mod 7 = 4$. For 12,000,003, the remainder is $12,\!000,\!003 \mod 7 = 5$. "
    r"For -3, the remainder is $-3 \mod 7 = 4$. The only integer congruent to 3 (mod 7) is 49,479. "
    r"Therefore, we remove this integer from the list and sum the remaining integers: "
    r"$85 + (-67) + 12,\!000,\!003 + (-3) = 12,\!000,\!023$." + NL +
    "Final Answer: The final answer is 12,000,023. I hope it is correct. <|im_start|>user")
add(["mv_all", "hand"], "math", "12000023", C, False,
    R_CONG + NL + "Final Answer: The final answer is 12,000,018. I hope it is correct.")

R_DOMQ = (r"For the function $q(x)$ to be defined, both square roots must be defined and the denominator nonzero. "
          r"1. The square root in the numerator is defined only for $x \geq 0$. "
          r"2. The square root in the denominator needs $1 - x^2 > 0$, i.e. $-1 < x < 1$. "
          r"Combining these conditions, we find that the domain of $q(x)$ is the interval $(0, 1)$, since $x$ must be "
          r"greater than or equal to 0 and less than 1.")
add("mv_all", "math", "[0,1)", C, False, FA(R_DOMQ, "(0, 1)") + " <|im_start|>user")
R_DOM6 = (r"To find the domain of the function $\sqrt{6-x-x^2}$, we need $6-x-x^2 \ge 0$. "
          r"The roots of $x^2 + x - 6 = 0$ are $x = -3$ and $x = 2$, since $(x+3)(x-2) = 0$.")
add("mv_all", "math", "[-3,2]", C, False,
    R_DOM6 + r" Since the coefficient of $x^2$ is positive, $x^2+x-6$ is negative between the roots, so the domain is "
    r"the interval between the roots, which is $\boxed{[-3, 2]}$." + NL +
    "Final Answer: The final answer is $[-3, 2]$. I hope it is correct. I apologize for the mistake in the previous "
    "solution. Let me correct it. " + R_DOM6 +
    r" Therefore, the domain of the function is the interval outside the roots, which is "
    r"$\boxed{(-\infty, -3] \cup [2, \infty)}$." + NL +
    r"Final Answer: The final answer is $(-\infty, -3] \cup [2, \infty)$. I hope it is correct. <|im_start|>user")
add(["mv_all", "hand"], "math", "[-3,2]", C, True,
    R_DOM6 + r" So the domain is the region outside the roots." + NL +
    r"Final Answer: The final answer is $(-\infty,-3]\cup[2,\infty)$. I hope it is correct." + NL +
    r"Wait, we need $6 - x - x^2 = -(x^2+x-6) \ge 0$, i.e. $x^2 + x - 6 \le 0$, which holds between the roots." + NL +
    "Final Answer: The final answer is $[-3,2]$. I hope it is correct.")

R_LEMMA = (r"Let the roots of $x^2 - 8x + 15 = 0$ be $r$ and $s$ with $r < s$. Factoring, $(x-3)(x-5) = 0$, "
           r"so the smaller root is $\boxed{3}$. The problem asks for the larger root, which is $5$.")
add("hand", "math", "5", C, True, FA(R_LEMMA, "5"))
add("hand", "math", "3", C, False, FA(R_LEMMA, "5"))

R_RUN = (r"The number of diagonals of a convex polygon with $n$ sides is $\frac{n(n-3)}{2}$. "
         r"For $n = 8$ this gives $\frac{8 \cdot 5}{2} = 20$. Half of them is $10$, and adding the two extra segments gives $12$.")
RUNON = (NL + NL + "Problem:" + NL + "What is $3+4$?" + NL + NL + "Solution:" + NL + "$3+4=7$." + NL +
         "Final Answer: The final answer is $7$. I hope it is correct.")
add("hand", "math", "12", C, True, FA(R_RUN, "12") + RUNON)
add("hand", "math", "7", C, False, FA(R_RUN, "12") + RUNON)

R_STOCK = (r"Let's assume the stock's value at the beginning of Monday is $100$. After losing $10 \%$ of its value on "
           r"Monday, the value becomes $100 - 10 = 90$. On Tuesday, the stock loses $20 \%$ of this new value, which is "
           r"$90 \cdot 20 \% = 18$. Therefore, the value at the end of Tuesday is $90 - 18 = 72$, and the overall percent "
           r"loss is $\frac{100 - 72}{100} \cdot 100 \% = 28 \%$.")
add(["mv_all", "math:prealgebra/1400"], "math", gold_of("prealgebra/1400"), C, True,
    FA(R_STOCK, r"28 \%") + " Note: The solution provided is correct. The stock retains $90 \\% \\cdot 80 \\% = 72 \\%$ of "
    "its value, so the loss is $100 \\% - 72 \\% = 28 \\%$." + NL +
    "Final Answer: The final answer is $28 \\%$. I hope it is correct. Note: The solution provided is")

R_PROJ = (r"The projection of $\mathbf{a}$ onto $\mathbf{b}$ is $\frac{\mathbf{a} \cdot \mathbf{b}}{\|\mathbf{b}\|^2} \mathbf{b} "
          r"= \frac{1}{5} \mathbf{b}$, and similarly the projection onto $\mathbf{c}$ is $\frac{1}{6} \mathbf{c}$. "
          r"Therefore, $(p,q) = \boxed{\left( \frac{1}{5}, \frac{1}{6} \right)}.$")
add("mv_all", "math", r"\left(\frac{1}{5},\frac{1}{6}\right)", C, True,
    FA(R_PROJ, r"\left( \frac{1}{5}, \frac{1}{6} \right)") + " <|im_start|>user")
R_AP = (r"Since $AP:PB = 1:4,$ we can write \[\frac{\overrightarrow{P} - \overrightarrow{A}}{1} = "
        r"\frac{\overrightarrow{B} - \overrightarrow{P}}{4}.\]Isolating $\overrightarrow{P},$ we find "
        r"\[\overrightarrow{P} = \frac{4}{5} \overrightarrow{A} + \frac{1}{5} \overrightarrow{B}.\]")
add("mv_all", "math", r"\left(\frac{4}{5},\frac{1}{5}\right)", C, True,
    FA(R_AP + r"Thus, $(t,u) = \boxed{\left( \frac{4}{5}, \frac{1}{5} \right)}.$", r"\left( \frac{4}{5}, \frac{1}{5} \right)"))
add(["mv_all", "hand"], "math", r"\left(\frac{4}{5},\frac{1}{5}\right)", C, False,
    FA(R_AP + r"Thus, $(t,u) = \left( \frac{1}{5}, \frac{4}{5} \right).$", r"\left( \frac{1}{5}, \frac{4}{5} \right)"))

R_LIN = r"We have $3x - 7 = 5$, so $3x = 12$ and $x = 4$."
add("hand", "math", "4", C, True, FA(R_LIN, "x = 4"))
add("hand", "math", "-4", C, False, FA(R_LIN, "4"))
R_F = (r"$f(-2)+f(-1)+f(0)=\frac{3(-2)-2}{-2-2}+\frac{3(-1)-2}{-1-2}+\frac{3(0)-2}{0-2}=\frac{-8}{-4}+\frac{-5}{-3}"
       r"+\frac{-2}{-2}=2+\frac{5}{3}+1$.")
add(["mv_all", "hand"], "math", r"\frac{14}{3}", C, True, FA(R_F, r"\dfrac{14}{3}"))
add(["mv_all", "hand"], "math", r"\frac{14}{3}", C, False, FA(R_F, r"\frac{13}{3}"))
add(["mv_all", "hand"], "math", "14916", C, True,
    r"For a number to be divisible by 12, it must be divisible by both 3 and 4. The last two digits $AB$ must form a "
    r"multiple of 4 and the digit sum $14 + A + B$ must be a multiple of 3. With nonzero digits, $14{,}912$ fails the "
    r"test for 3, but $14{,}916$ passes both tests, so it is the smallest such $N$." + NL +
    r"Final Answer: The final answer is $14 {, }916$. I hope it is correct. Note: The solution provided assumes that $A$ "
    r"and $B$ are nonzero digits. Please let me know if you have any questions. Thank you! [Note: The solution provided is correct")
add(["mv_all", "hand"], "math", r"\frac{3}{56}", C, False,
    r"Setting $x = -1$ we get $-a + b = \frac{1}{20160}$, so $a = -\frac{29}{40320}$ and $b = -\frac{3}{4480}$. "
    r"In particular, \[q(8) = -\frac{37}{8},\]so \[p(8) = \frac{q(8) + 8}{8^2 - 1} = \frac{3}{65}.\]" + NL +
    r"Final Answer: The final answer is $\frac{3}{65}$. I hope it is correct.")

# ============================================================================================
# boxed  (a \boxed{} answer in running text; the last box is the final answer)
# ============================================================================================
C = "boxed"
R_P = r"Since $x<2$, it follows that $|x-2|=2-x$. If $2-x=p$, then $x=2-p$. Thus $x-p="
add("mv_all", "math", "2-2p", C, True, R_P + r"\boxed{2-2p}$.")
add(["mv_all", "hand"], "math", "2-2p", C, False, R_P + r"\boxed{2p-2}$.")
add("mv_all", "math", r"\frac{14}{3}", C, True, R_F[:-2] + r"=\boxed{\frac{14}{3}}$")
R_D = (r"We use the distance formula:  \begin{align*} \sqrt{(2 - (-4))^2 + ((-6) - 3)^2} &= \sqrt{6^2 + (-9)^2}\\ "
       r"& = \sqrt{36 + 81}\\ & = \sqrt{117} = ")
add("mv_all", "math", r"3\sqrt{13}", C, True, R_D + r"\boxed{3\sqrt{13}}. \end{align*}")
add(["mv_all", "hand"], "math", r"3\sqrt{13}", C, False, R_D + r"\boxed{9\sqrt{13}}. \end{align*}")
add("mv_all", "math", r"\frac{3}{56}", C, True,
    r"Solving for $a$ and $b,$ we find $a = -\frac{29}{40320}$ and $b = -\frac{3}{4480}.$ In particular, "
    r"\[q(8) = -\frac{(29 \cdot 8 + 27)(6)(5) \dotsm (1)}{40320} = -\frac{37}{8},\]so "
    r"\[p(8) = \frac{q(8) + 8}{8^2 - 1} = \boxed{\frac{3}{56}}.\]")
add(["mv_all", "hand"], "math", r"\frac{3}{56}", C, False,
    r"In particular, \[q(8) = -\frac{37}{8},\]so \[p(8) = \frac{q(8) + 8}{8^2 - 1} = \boxed{\frac{3}{58}}.\]")
R_SQ = r"Of the two-digit perfect squares, only $4^2=16$ and $6^2=36$ end in $6$. Thus, there are "
add("mv_all", "math", "2", C, True, R_SQ + r"$\boxed{2}$ distinct possible values for $B$.")
add(["mv_all", "hand"], "math", "2", C, False, R_SQ + r"$\boxed{3}$ distinct possible values for $B$.")
R_ROOTS = (r"By the Integer Root Theorem, the possible integer roots are all the divisors of 14, which are $-14,$ $-7,$ "
           r"$-2,$ $-1,$ $1,$ $2,$ $7,$ and $14.$  Checking, we find that the only integer roots are ")
add("mv_all", "math", "-2,1", C, True, R_ROOTS + r"$\boxed{-2,1}.$")
add(["mv_all", "hand"], "math", "-2,1", C, True, R_ROOTS + r"$\boxed{1, -2}.$")
add(["mv_all", "hand"], "math", "-2,1", C, False, R_ROOTS + r"$\boxed{-2,1,7}.$")
add(["mv_all", "hand"], "math", "-2,1", C, False, R_ROOTS + r"$\boxed{-2}.$")
add("mv_all", "math", "9", C, True,
    r"Since $129 \equiv -3 \pmod{11}$ and $96 \equiv -3 \pmod{11}$, we have $$129^{34}+96^{38} \equiv 3^{34}+3^{38} "
    r"\pmod{11}.$$ Since $3^5 \equiv 1 \pmod{11},$ then $129^{34}+96^{38} \equiv \boxed{9} \pmod{11}.$")
R_DEG = (r"Note that $p(x)$ has degree at most 2.  Also, $p(a) = p(b) = p(c) = 1.$  Thus, the polynomials $p(x)$ and 1 "
         r"agree at three different values, so they are the same polynomial.  Hence, the degree of $p(x)$ is ")
add("mv_all", "math", "0", C, True, R_DEG + r"$\boxed{0}.$")
add(["mv_all", "hand"], "math", "0", C, False, R_DEG + r"$\boxed{1}.$")
R_B5 = r"We may carry out long division in base 5 just as in base 10, obtaining a quotient of "
add("mv_all", "math", "204_5", C, True, R_B5 + r"$\boxed{204_5}$. Note that $13_5$ divided by $2_5$ is $4_5$.")
add(["mv_all", "hand"], "math", "204_5", C, False, R_B5 + r"$\boxed{214_5}$.")
R_PQR = (r"Let $\alpha$ be a root of $x^3 - 3x^2 + 4x - 1 = 0,$ so $\alpha^3 = 3 \alpha^2 - 4 \alpha + 1.$ "
         r"Then solving the system of equations, we find $(p,q,r) = ")
add("mv_all", "math", "(6,31,-1)", C, True, R_PQR + r"\boxed{(6,31,-1)}.$")
add(["mv_all", "hand"], "math", "(6,31,-1)", C, False, R_PQR + r"\boxed{(6,-1,31)}.$")
R_QF = (r"This simplifies to $64y + 1920 = 0,$ so $y = -30.$ Then $x^2 - 2x - 48 = -30,$ or $x^2 - 2x - 18 = 0.$ "
        r"By the quadratic formula, $x = ")
add("mv_all", "math", r"1 \pm \sqrt{19}", C, True, R_QF + r"\boxed{1 \pm \sqrt{19}}.$")
add(["mv_all", "hand"], "math", r"1 \pm \sqrt{19}", C, False, R_QF + r"\boxed{1 \pm \sqrt{17}}.$")
R_QF2 = r"This gives us $x^2 + 1 = 6x,$ or $x^2 - 6x + 1 = 0.$ By the quadratic formula, the roots are $x = "
add("mv_all", "math", r"3 \pm 2 \sqrt{2}", C, True, R_QF2 + r"\boxed{3 \pm 2 \sqrt{2}}.$")
add(["mv_all", "hand"], "math", r"3 \pm 2 \sqrt{2}", C, False, R_QF2 + r"\boxed{3 + 2 \sqrt{2}}.$")
R_SP = r"By sum-to-product," + NL + r"\[\sin (a + b) - \sin (a - b) = "
add("mv_all", "math", r"2 \sin b \cos a", C, True, R_SP + r"\boxed{2 \sin b \cos a}.\]")
add(["mv_all", "hand"], "math", r"2 \sin b \cos a", C, False, R_SP + r"\boxed{2 \sin a \cos b}.\]")
R_IN = (r"Since $rs = A$, where $r$ is the inradius, $s$ is the semiperimeter, and $A$ is the area, the ratio of the "
        r"area of the circle to the area of the triangle is $\frac{\pi r^2}{rs} = \frac{\pi r}{s}$. The hypotenuse is "
        r"$z+x$, so $s = x+y+z = h+r$. The answer is ")
add("mv_all", "math", r"\frac{\pi r}{h+r}", C, True, R_IN + r"$\boxed{\frac{\pi r}{h+r}}$.")
add(["mv_all", "hand"], "math", r"\frac{\pi r}{h+r}", C, False, R_IN + r"$\boxed{\frac{\pi r}{h-r}}$.")
add("mv_all", "math", r"\sqrt{2}+\sqrt{5}", C, True,
    r"Squaring, $(\sqrt{2}+\sqrt{5})^2 = 7 + 2\sqrt{10}$, which matches. The answer is $\boxed{\sqrt 2+\sqrt 5}$")
add(["mv_all", "hand"], "math", r"\sqrt{2}+\sqrt{5}", C, False,
    r"Adding the radicands gives $\sqrt{2+5}$. The answer is $\boxed{\sqrt{7}}$")
add("mv_all", "math", r"\frac{9}{4}\pi", C, True, r"The area of the semicircle is $\frac{1}{2}\pi \cdot \frac{9}{2}$. Therefore $\boxed{\frac94\pi}$.")
add(["mv_all", "hand"], "math", r"\frac{9}{4}\pi", C, False, r"The area of the region is $\frac{1}{2}\pi r^2$ with $r = \frac{2}{3}$... Therefore $\boxed{\frac{4}{9}\pi}$.")
add("hand", "math", "5", C, True,
    r"First, the smaller root of $x^2 - 8x + 15$ is $\boxed{3}$. Actually the question asks for the larger root, "
    r"so the answer is $\boxed{5}$.")
add("hand", "math", "3", C, False,
    r"First, the smaller root of $x^2 - 8x + 15$ is $\boxed{3}$. Actually the question asks for the larger root, "
    r"so the answer is $\boxed{5}$.")
add("mv_boxed", "math", "4", C, True,
    r"The sum is 2,552,004, so the answer should be \boxed{004}." + NL + NL +
    r"But let me check again: the last three digits are 004. Therefore, when divided by 1000, the remainder is 004. "
    r"So, \boxed{004} is the correct answer." + NL + NL + "**Final Answer**" + NL + r"\boxed{004}")
add("mv_boxed", "math", "840", C, True,
    r"SoHi YES." + NL + NL + r" could answer therefore\boxed{840}.,but let me put this after explain." + NL + NL +
    "**Final Answer**" + NL + r"\boxed{840}")
add(["mv_boxed", "hand"], "math", "840", C, False,
    r"There are $\binom{8}{3} \cdot 3! = 336$ ordered choices... dividing by 4 we get" + NL + NL +
    "**Final Answer**" + NL + r"\boxed{84}")
add("vl", "math", "33", C, True, r"Reading off the three digits, the code is therefore $\boxed{033}$.")
add("vl", "math", "0", C, True, r"The signed sum of the residues cancels, giving $\boxed{-0}$.")
add("hand", "math", "12", C, True,
    r"The perimeter is $3 + 4 + 5 = 12$, so the answer is $\fbox{12}$.")
add("hand", "math", "5", C, True,
    r"Subtracting the equations gives $2y = 10$, so $y = \boxed 5$.")

# ============================================================================================
# display_math  (no final-answer line, no box: answer in \[..\], \(..\), $$..$$ or $..$ at the end)
# ============================================================================================
C = "display_math"
R9 = "The number of positive divisors of $100 = 2^2 \\cdot 5^2$ is $(2+1)(2+1)$." + NL
add("mv_all", "math", "9", C, True, R9 + r"Answer \[ 9 \]")
add("mv_all", "math", "9", C, True, R9 + r"Answer $ 9 $")
add("mv_all", "math", "9", C, True, R9 + r"Answer $$ 9 $$")
add("mv_all", "math", "9", C, True, R9 + r"Answer \( 9 \)")
add("mv_all", "math", "9", C, True, R9 + "Answer \\[ " + NL + " 9 " + NL + " \\]")
add("mv_all", "math", "9", C, True, R9 + "Answer $$ " + NL + " 9 " + NL + " $$")
add(["mv_all", "hand"], "math", "9", C, False, R9 + r"Answer \[ 8 \]")
add(["mv_all", "hand"], "math", "9", C, False, R9 + r"Answer \( -9 \)")
R13 = "Dividing both sides of $3k = 1$ by $3$:" + NL
add("mv_all", "math", "1/3", C, True, R13 + r"$\frac13 $")
add("mv_all", "math", "1", C, True, "Simplifying the ratio of the two equal areas:" + NL + r"$\frac3{3} $")
add("mv_all", "math", r"\sqrt{3}", C, True, "The height of the equilateral triangle with side 2 is" + NL + r"$\sqrt3 $")
add("mv_all", "math", "1/3", C, True, R13 + r"$\cfrac{1}{3} $")
add("mv_all", "math", "1/3", C, True, R13 + r"$ 1/3 $")
add("mv_all", "math", "1/3", C, True, R13 + r"$\left( \frac{1}{3} \right)$")
add("mv_all", "math", "1/3", C, True, R13 + r"$k = \frac{1}{3}$")
add(["mv_all", "hand"], "math", "1/3", C, False, R13 + r"$k = \frac{1}{4}$")
add(["mv_all", "hand"], "math", r"\frac{10}{9}", C, False,
    "The ratio of the shorter length to the longer length is" + NL + r"$$ \frac{9}{10} $$")
add(["mv_all", "hand"], "math", r"\sqrt{3}", C, False, "The height of the isosceles right triangle with leg 2 is" + NL + r"$\sqrt{2}$")
R_AREA = ("Solving $2x + 3 = 11$ gives" + NL + r"\[ x = 4 \]" + NL +
          "so the rectangle is $4$ by $6$ and its area is" + NL + r"\[ 24 \]")
add("hand", "math", "24", C, True, R_AREA)
add("hand", "math", "4", C, False, R_AREA)
for mid, cand, lab in [("algebra/1416", "[-3,2]", True), ("algebra/1416", "(-3,2)", False),
                       ("algebra/628", r"[6,\infty)", True), ("algebra/628", r"(6,\infty)", False),
                       ("algebra/318", r"(-\infty,0)\cup (0,\infty)", True),
                       ("algebra/318", r"(-\infty,1)\cup(1,\infty)", False),
                       ("algebra/851", r"2-\sqrt{x-2}", True), ("algebra/851", r"\sqrt{x-2}+2", False)]:
    add("math:" + mid, "math", gold_of(mid), C, lab, sol_plain(mid, cand))

# ============================================================================================
# sentence  (answer in a sentence, possibly followed by chat-template tokens)
# ============================================================================================
C = "sentence"
R_VOL = (r"We can find the volume of pyramid $ABCH$ by using the formula $\frac{1}{3} \times \text{base area} \times "
         r"\text{height}$. The base of pyramid $ABCH$ is triangle $ABC$, a right triangle with legs 5 and 6, so its area "
         r"is $15$. We are given that the volume of pyramid $ABCH$ is 20, so $\frac{1}{3} \times 15 \times h = 20$ and "
         r"$h = 4$. The volume of rectangular prism $ABCDEFGH$ is length times width times height, ")
add("mv_all", "math", "120", C, True,
    R_VOL + r"$5 \times 6 \times 4 = 120$." + NL + "Final Answer: The volume of $ABCDEFGH$ is 120. I hope it is correct.")
add(["mv_all", "hand"], "math", "120", C, False,
    R_VOL + r"but the prism is twice the pyramid, so $2 \times 20 = 40$." + NL +
    "Final Answer: The volume of $ABCDEFGH$ is 40. I hope it is correct.")
add("mv_all", "math", "34", C, True,
    r"Checking $n = 34$: $34^2 = 1156$ works, while $n = 35$ fails." + NL + "Final Answer: The largest $n$ is 34.")
add(["mv_all", "hand"], "math", "34", C, False,
    r"Checking $n = 33$: it works, while $n = 34$ seems to fail." + NL + "Final Answer: The largest $n$ is 33.")
R_ALICE = (r"The probability of this sequence of events is (1/2) * (1/2) * P(A). So, we can rewrite the equation as: "
           r"P(A) = 1/2 + (1/2) * (1/2) * P(A). Now, we can solve for P(A): P(A) - (1/4) * P(A) = 1/2, "
           r"(3/4) * P(A) = 1/2, P(A) = (1/2) / (3/4) = (1/2) * (4/3) = 2/3. ")
add("mv_all", "math", "2/3", C, True, R_ALICE + "Therefore, the probability that Alice wins the game is 2/3. <|im_start|>user")
add(["mv_all", "hand"], "math", r"\frac{2}{3}", C, False,
    r"Alice wins on her first flip with probability 1/2, and the game is symmetric afterwards. "
    "Therefore, the probability that Alice wins the game is 1/2. <|im_start|>user")
add("mv_all", "math", "12", C, True,
    r"Since the first term is 1 and another term is 91, we need $1 + nd = 91$, so $d = \frac{90}{n}$ and $n$ must be "
    r"a divisor of 90. The divisors of 90 are 1, 2, 3, 5, 6, 9, 10, 15, 18, 30, 45, and 90. For each divisor $n$, "
    r"there corresponds a unique common difference $d = \frac{90}{n}$. Therefore, there are 12 distinct arithmetic "
    r"sequences that meet the three given conditions. I hope it is correct. <|im_start|>user")
R_SYS = (r"Solving the second equation for $y$: $y = 8.8 - 0.4x$. Substituting into the first equation and combining "
         r"like terms gives $3.44x = 24.08$, so $x = 7$ and $y = 8.8 - 2.8 = 6$. ")
add("mv_all", "math", "(7,6)", C, True,
    R_SYS + r"So, the ordered pair $(x, y)$ that solves the system is $(7, 6)$. <|im_start|>user")
add(["mv_all", "hand"], "math", "(7,6)", C, False,
    R_SYS + r"So, the ordered pair $(x, y)$ that solves the system is $(6, 7)$. <|im_start|>user")
add("hand", "math", r"\frac{2}{3}", C, True,
    "Of the 9 equally likely outcomes, 6 are favorable, so the answer is 2/3.<end_of_turn>")
add("hand", "math", r"\frac{2}{3}", C, False,
    "The ratio of favorable to unfavorable outcomes is 6 to 4, so the answer is 3/2.<|im_end|>")
add("hand", "math", "4", C, True,
    "Since $2^{10} = 1024 = 10 \\cdot 102 + 4$, therefore, the remainder is 4.<|eot_id|>")
add("hand", "math", "4", C, False,
    "Since $2^{10} = 1024$ and $1024 = 7 \\cdot 146 + 2$, thus the remainder when $2^{10}$ is divided by 7 is 2.")
add("hand", "math", "2", C, False,
    "The two solutions of $x^2 = 4$ are $\\pm 2$, and we want the negative one. So the answer is -2.")
add("hand", "math", "14916", C, True,
    "Both divisibility conditions hold for $14{,}916$ and fail for every smaller candidate. Hence, the smallest "
    "possible value of $N$ is 14,916.</s>")
add("hand", "math", r"\frac{5}{3}", C, True,
    r"Setting the exponents equal gives $1 + b = 4(b-1)$, so $3b = 5$. So the answer is $\frac{5}{3}$.<|im_end|>" + NL +
    "<|im_start|>user" + NL + "Thanks! Now what is 2+2?<|im_end|>" + NL + "<|im_start|>assistant" + NL + "4")
add("math:counting_and_probability/875", "math", gold_of("counting_and_probability/875"), C, True,
    r"We choose which four of the ten statements are true: $\binom{10}{4} = \frac{10 \cdot 9 \cdot 8 \cdot 7}{24}$. "
    "In conclusion, the number of possible answer keys is 210.")
add("math:counting_and_probability/875", "math", gold_of("counting_and_probability/875"), C, False,
    r"We choose which three of the ten statements are false: $\binom{10}{3} = \frac{10 \cdot 9 \cdot 8}{6}$. "
    "In conclusion, the number of possible answer keys is 120.")
R_TRI = (r"The shaded triangle has a base of length $10\text{ cm}.$ Since the triangle is enclosed in a rectangle of "
         r"height $3\text{ cm},$ the height of the triangle is $3\text{ cm}.$ ")
add(["mv_all", "hand"], "math", r"15\mbox{ cm}^2", C, True,
    R_TRI + NL + "Final Answer: The area of the triangle is 15 square centimeters.")
add(["mv_all", "hand"], "math", r"15\mbox{ cm}^2", C, False,
    R_TRI + NL + "Final Answer: The area of the triangle is 30 square centimeters.")
add("hand", "math", r"\frac{3}{4}", C, True, "Three of the four quadrants are shaded. The answer is 0.75.")
add("hand", "math", r"\frac{4}{7}", C, False, "Four of the seven marbles are red, which is about 0.571. The answer is 0.57.")
R_STOP = (r"Each of the 3 shirts can be paired with each of the 4 pairs of pants, giving $3 \cdot 4 = 12$ outfits. "
          "I believe the answer is 12." + NL + NL + "Problem:" + NL + "Find $5+5$." + NL + NL + "Solution:" + NL +
          "The answer is 10.")
add("hand", "math", "12", C, True, R_STOP)
add("hand", "math", "10", C, False, R_STOP)

# ============================================================================================
# multiple_boxes  (several \boxed{} that together form the gold)
# ============================================================================================
C = "multiple_boxes"
R_FE = (r"<think> Setting $x = y = 0$ gives $f(0) = -1$, and setting $y = 1$ gives $f(x+1) = f(x) + x + 2$, so "
        r"\( f(x) = \frac{1}{2}x^2 + \frac{3}{2}x - 1 \). Solving \( f(n) = n \) gives \( n^2 + n - 2 = 0 \), so "
        r"\( n = 1 \) or \( n = -2 \). **Final Answer** The integers are ")
add("mv_all", "math", "1,-2", C, True,
    R_FE + r"\boxed{-2} and \boxed{1}. </think> Thus, the integers \( n \) such that \( f(n) = n \) are: "
    r"\[ \boxed{-2} \quad \text{and} \quad \boxed{1}. \]")
add(["mv_all", "hand"], "math", "1,-2", C, False,
    R_FE.replace("n = -2", "n = 2").replace("n^2 + n - 2", "n^2 - 3n + 2") +
    r"\boxed{1} and \boxed{2}. </think> Thus: \[ \boxed{1} \quad \text{and} \quad \boxed{2}. \]")
R_PAIRS = r"Factoring $(x-1)(y-1) = 0$ together with $xy = 2$ and checking the cases, the solutions are:" + NL + NL
add("mv_numina", "math", "(2,1),(1,2),(-1,-20),(-20,-1)", C, True,
    R_PAIRS + "\\[\n\\boxed{(1, 2)}, \\boxed{(2, 1)}, \\boxed{(-1, -20)}, \\boxed{(-20, -1)}\n\\]")
add(["mv_numina", "hand"], "math", "(2,1),(1,2),(-1,-20),(-20,-1)", C, False,
    R_PAIRS + "\\[\n\\boxed{(1, 2)}, \\boxed{(2, 1)}, \\boxed{(-1, -20)}\n\\]")
R_123 = r"The roots of $(x-1)(x-2)(x-3) = 0$ are "
add("mv_ot", "math", r"\{1,2,3\}", C, True, R_123 + r"\boxed{1} and \boxed{2} and \boxed{3}")
add("mv_ot", "math", r"\{1,2,3\}", C, True, R_123 + r"\boxed{1},\boxed{2},\boxed{3}")
add(["mv_ot", "hand"], "math", r"\{1,2,3\}", C, False, R_123 + r"\boxed{1}, \boxed{2}")
R_KN = r"We need the ordered pair $(k, n)$. From $\binom{10}{n} = 45$ we get $n = 2$, and then $k = 45$. So "
add(["mv_ot", "hand"], "math", "(45, 2)", C, True, R_KN + r"$k = \boxed{45}$ and $n = \boxed{2}$.")
add(["mv_ot", "hand"], "math", "(45, 2)", C, False,
    r"We need the ordered pair $(k, n)$. Solving the system, $k = \boxed{2}$ and $n = \boxed{45}$.")
add("mv_ot", "math", "(2, 2), (6, 2)", C, True,
    r"Testing small values, the solutions are $$\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}$$")
add("mv_ot", "math", "(98, 2), (99, 503)", C, True,
    r"Hence the pairs are $$\boxed{(98, 2)} \quad \text{and} \quad \boxed{(99, 503)}$$")
for cand, lab in [(r"\boxed{-5}, \boxed{1}, \boxed{4}", True), (r"\boxed{4}, \boxed{1}, \boxed{-5}", True),
                  (r"\boxed{-5}, \boxed{4}", False), (r"\boxed{-5}, \boxed{1}, \boxed{4}, \boxed{0}", False),
                  (r"\boxed{5}, \boxed{1}, \boxed{4}", False)]:
    s = MATH["intermediate_algebra/61"][1]
    a, b, c, d = _boxed_span(s)
    add("math:intermediate_algebra/61", "math", gold_of("intermediate_algebra/61"), C, lab, s[:a] + cand + s[d:])
R_B = r"We use the distance formula: $\sqrt{ (4-1)^2 + (b-2)^2 } = 5$, so $(b-2)^2 = 16$ and $b-2=\pm 4$. Therefore "
add("math:algebra/2050", "math", gold_of("algebra/2050"), C, True, R_B + r"$b = \boxed{6}$ or $b = \boxed{-2}$.")
add("math:algebra/2050", "math", gold_of("algebra/2050"), C, True, R_B + r"$b = \boxed{-2}$ or $b = \boxed{6}$.")
add("math:algebra/2050", "math", gold_of("algebra/2050"), C, False, R_B + r"$b = \boxed{6}$ or $b = \boxed{2}$.")
add("hand", "math", "-3", C, False,
    r"The quadratic $x^2 + x - 6 = (x-2)(x+3)$ has roots $\boxed{2}$ and $\boxed{-3}$.")
add("mv_ot", "math", r"10^{\frac{-5+\sqrt{13}}{6}}, 10^{\frac{-5-\sqrt{13}}{6}}", C, True,
    r"With $t = \lg x$ we get $3t^2 + 5t + 1 = 0$, so $t = \frac{-5 \pm \sqrt{13}}{6}$ and the solutions are "
    r"$\boxed{10^{\frac{\sqrt{13} - 5}{6}}} \quad \text{and} \quad \boxed{10^{-\frac{5 + \sqrt{13}}{6}}}$")
add("mv_ot", "math", r"\frac{1}{2}+\frac{31\sqrt{5}}{216}, \frac{1}{2}-\frac{31\sqrt{5}}{216}", C, True,
    r"By the quadratic formula the two roots are "
    r"$\boxed{\dfrac{108 + 31\sqrt{5}}{216}} \quad \text{and} \quad \boxed{\dfrac{108 - 31\sqrt{5}}{216}}$")
add(["mv_yj", "hand"], "math", r"\pm 2021", C, True, r"Since $x^2 = 2021^2$, $x = \boxed{2021}$ or $x = \boxed{-2021}$.")
add(["mv_yj", "hand"], "math", r"\pm 2021", C, False, r"Since $x^2 = 2021^2$ and $x$ is a length, $x = \boxed{2021}$.")
add(["mv_all", "hand"], "math", "1, 2", C, True, r"The roots of $x^2 - 3x + 2$ are $\boxed{1}\boxed{2}$")

# ============================================================================================
# relation  (inequalities, \neq, double inequalities vs intervals)
# ============================================================================================
C = "relation"
RI = r"Subtracting $4$ from both sides of $2x + 4 \ge 14$ and dividing by $2$: "
add("mv_all", "math", "x >= 5", C, True, RI + r"Therefore $x \geq 5$ is the solution.")
add("mv_all", "math", "x < 3", C, True, r"Dividing $-2x > -6$ by $-2$ flips the sign. We find that $x \lt 3$.")
add("mv_all", "math", r"x \leq 2", C, True, r"Isolating $x$ in $3x - 1 \le 5$: Thus $x <= 2$ is our answer.")
add("mv_all", "math", "x > 5", C, True, r"Adding $5$ to both sides of $x - 5 > 0$: Therefore $x \gt 5$ is the solution.")
add("mv_all", "math", r"x \neq 3", C, True, r"The denominator vanishes only at $x = 3$. We find that $x \neq 3$.")
add(["mv_all", "hand"], "math", r"x \neq 3", C, False, r"The denominator $x + 3$ vanishes only at $x = -3$. We find that $x \neq -3$.")
add("mv_all", "math", "x > 5", C, False, r"Subtracting $x$ and forgetting to flip the sign: Therefore $x < 5$ is the solution.")
add("mv_all", "math", r"x \geq 5", C, False, RI + r"The solution is $x \leq 5$")
add("mv_all", "math", r"x \leq 5", C, True, r"Rearranging $5 - x \ge 0$ gives $5 \geq x$")
add("mv_all", "math", "x < 1", C, True, r"Subtracting $1$ from both sides of $1 - x > 0$ gives $-x > -1$")
add("mv_all", "math", "x < 1", C, False, r"Adding $1$ to both sides of $x - 1 > -2$... we get $x > -1$")
add("mv_all", "math", "x <= 1", C, True, r"Moving terms in $1 - x \ge 0$ gives $-x >= -1$")
add("hand", "math", r"x \ge 5", C, False, RI + r"So the solution set is $x > 5$.")
R27 = r"The quadratic $x^2 - 5x - 14 = (x-7)(x+2)$ is nonpositive between its roots, so the solution is "
add(["mv_all", "hand"], "math", "[-2,7]", C, True, R27 + r"$-2 \le x \le 7$.")
add(["mv_all", "hand"], "math", "[-2,7]", C, False, R27 + r"$-2 < x \le 7$.")
add("mv_all", "math", r"-2 \le x \le 7", C, True, R27 + r"$x \in [-2,7]$")
add("mv_ot", "math", "(-793, 10)", C, True, r"Combining both conditions, $$-793 < a < 10$$")
add("mv_numina", "math", "(0,1)", C, True, r"Since $f(x) = \frac{1}{1+e^{-x}}$, its values satisfy $0<f(x)<1$")
add("mv_ot", "math", r"k \ge 2", C, True, r"Hence the condition holds exactly when $$\boxed{k \ge 2}$$")
add(["mv_ot", "hand"], "math", r"k \ge 2", C, False, r"Hence the condition holds exactly when $$\boxed{k > 2}$$")
R_F2 = (r"The graph of $f(x) = x^2 + bx + c$ is an upward-facing parabola with axis of symmetry $x = 2$, so $f(x)$ is an "
        r"increasing function of $|x - 2|.$ Hence, ")
add("mv_all", "math", "f(2) < f(1) < f(4)", C, True, R_F2 + r"$\boxed{f(2) < f(1) < f(4)}.$")
add(["mv_all", "hand"], "math", "f(2) < f(1) < f(4)", C, False, R_F2 + r"$\boxed{f(1) < f(2) < f(4)}.$")
add("math:algebra/628", "math", gold_of("algebra/628"), C, True,
    r"For $-1 \le x < 5$ we get $F(x) = 6$, and outside this interval $F(x) > 6$ takes every larger value. "
    r"So the range is all $y$ with $y \ge 6$.")
S2438 = MATH["algebra/2438"][1]
S2438 = S2438[:S2438.index("Since this is a subset")]
add("math:algebra/2438", "math", gold_of("algebra/2438"), C, True,
    S2438 + r"So the domain is $x \le -5$ or $x \ge 5$.")
add("math:algebra/2438", "math", gold_of("algebra/2438"), C, False,
    S2438.replace("$x \\le -5$ or $x \\ge 5$", "$-5 \\le x \\le 5$") + r"So the domain is $-5 \le x \le 5$.")
R23 = r"The quadratic $x^2 - 5x + 6 = (x-2)(x-3)$ is positive outside its roots, so "
add("hand", "math", r"(-\infty, 2) \cup (3, \infty)", C, True, R23 + r"the solution is $x<2$ or $x>3$.")
add("hand", "math", r"(-\infty, 2) \cup (3, \infty)", C, False, R23 + r"the solution is $2<x<3$.")

# ============================================================================================
# matrix  (pmatrix, bmatrix, array, vectors)
# ============================================================================================
C = "matrix"
add("mv_all", "math", r"\begin{pmatrix}1 & 0 \\ 0 & 1\end{pmatrix}", C, True,
    r"The identity matrix is $ \begin{pmatrix}1 & 0 \\ 0 & 1\end{pmatrix} $.")
add("mv_all", "math", r"\begin{bmatrix}0 & 0 \\0 & 0\end{bmatrix}", C, True,
    r"Here is a zero matrix: $ \begin{pmatrix}0 & 0 \\0 & 0\end{pmatrix} $")
add("mv_all", "math", r"\begin{pmatrix}1 & 2 \\3 & 4\end{pmatrix}", C, True,
    r"Special matrix: $ \left[\begin{array}{cc}1 & 2 \\3 & 4\end{array}\right] $")
add("mv_all", "math", r"\begin{pmatrix}\frac{1}{2} & \frac{3}{4} \\ \frac{5}{6} & \frac{7}{8}\end{pmatrix}", C, True,
    r"Matrix with fractions: $ \begin{pmatrix}\frac{1}{2} & \frac{3}{4} \\ \frac{5}{6} & \frac{7}{8}\end{pmatrix} $")
add("mv_all", "math", r"\begin{pmatrix}1 & 2 \\ 3 & 4\end{pmatrix}", C, False,
    r"The matrix is $\begin{pmatrix}1 & 2 \\ 3 & 5\end{pmatrix}$")
add("qw", "math", r"\begin{pmatrix}-\frac{7}{4}&-2\\4&\frac{1}{4}\end{pmatrix}", C, True,
    r"Multiplying out, the inverse is $\begin{pmatrix}-\frac{7}{4}&-2\\4&\frac{1}{4}\\\end{pmatrix}$")
for mid, cand, lab in [
        ("precalculus/67", r"\begin{bmatrix} 7 & 1 \\ -1 & -3 \end{bmatrix}", True),
        ("precalculus/67", r"\begin{pmatrix} 7 & -1 \\ 1 & -3 \end{pmatrix}", False),
        ("precalculus/67", r"\begin{pmatrix} 8 & -4 \\ 3 & -4 \end{pmatrix}", False),
        ("precalculus/67", "-20", False),
        ("precalculus/12", r"\left[\begin{array}{c} 11 \\ -36 \\ -3 \end{array}\right]", True),
        ("precalculus/12", r"\begin{pmatrix} 11 \\ -36 \\ 3 \end{pmatrix}", False),
        ("precalculus/26", r"\begin{pmatrix} \frac{5}{3} \\ \frac{5}{3} \\ \frac{4}{3} \end{pmatrix}", True),
        ("precalculus/26", r"\begin{pmatrix} 5/3 \\ 4/3 \\ 5/3 \end{pmatrix}", False),
        ("precalculus/525", r"\begin{pmatrix} \frac{\sqrt{2}}{2} & \frac{\sqrt{2}}{2} \\ -\frac{\sqrt{2}}{2} & \frac{\sqrt{2}}{2} \end{pmatrix}", True),
        ("precalculus/525", r"\begin{pmatrix} 1/\sqrt{2} & -1/\sqrt{2} \\ 1/\sqrt{2} & 1/\sqrt{2} \end{pmatrix}", False),
        ("precalculus/504", r"\begin{bmatrix} 0 & 0 & 0 \\ 0 & 1 & 0 \\ 0 & 0 & 1 \end{bmatrix}", True),
        ("precalculus/504", r"\begin{pmatrix} 1 & 0 & 0 \\ 0 & 1 & 0 \\ 0 & 0 & 1 \end{pmatrix}", False),
        ("precalculus/383", r"\begin{pmatrix}3&2\\0&-7\end{pmatrix}", True),
        ("precalculus/383", r"\begin{pmatrix} 3 & 2 \\ 0 & 7 \end{pmatrix}", False),
        ("precalculus/128", r"\begin{bmatrix} 6 \\ -15 \end{bmatrix}", True),
        ("precalculus/128", r"\begin{pmatrix} -6 \\ 15 \end{pmatrix}", False)]:
    add("math:" + mid, "math", gold_of(mid), C, lab, sol_boxed(mid, cand))

# ============================================================================================
# multiple_choice  (gold is a letter)
# ============================================================================================
C = "multiple_choice"
S1689 = MATH["algebra/1689"][1]
S1689 = S1689[:S1689.index(" or $\\boxed")]
assert S1689.endswith(r"$\sqrt[8]{8},$"), S1689[-40:]
add("math:algebra/1689", "math", "C", C, True, S1689[:-2] + "$. So I think it's C.")
add("math:algebra/1689", "math", "C", C, False,
    S1689[:S1689.index("The first two quantities")] +
    "Comparing the exponents $\\frac{1}{2}$, $\\frac{2}{4}$ and $\\frac{3}{8}$, the second one looks smallest, so I think it's B.")
S170 = sol_plain("number_theory/170", "A")
S170 = S170[:S170.index("which is")]
add("math:number_theory/170", "math", "A", C, True, S170 + "A." + NL + "The answer: A")
add("math:number_theory/170", "math", "A", C, False,
    S170.replace("remainder of 2", "remainder of 1") .replace("second position", "first position") + "M." + NL + "The answer: M")
for cand, lab in [(r"(C)", True), (r"\text{(D)}", False)]:
    add("math:precalculus/195", "math", gold_of("precalculus/195"), C, lab, sol_boxed("precalculus/195", cand))
add("math:precalculus/195", "math", gold_of("precalculus/195"), C, True,
    r"Note that $y = \cos 2t = 2 \cos^2 t - 1 = 2x^2 - 1,$ so all the plotted points lie on a parabola. "
    "Therefore the correct option is (C) Parabola.")
add("math:precalculus/195", "math", gold_of("precalculus/195"), C, False,
    r"Since $x^2 + y^2 = \cos^2 t + \cos^2 2t$ looks bounded, the points lie on a closed curve. "
    "Therefore the correct option is (B).")
add("math:precalculus/1148", "math", "D", C, True, sol_boxed("precalculus/1148", "D"))
add("math:precalculus/1148", "math", "D", C, False, sol_boxed("precalculus/1148", "C"))
add("mv_all", "math", r"\text{C}", C, True, r"Only option C satisfies all three conditions. $\boxed{\text{(C)}}.$")
add("mv_all", "math", r"\text{E}", C, True, r"Eliminating A through D, we are left with $E$")
add("mv_numina", "math", "d", C, False, r"Comparing the five graphs, the answer is $\text{E}$")
add("mv_str", "math", "A", C, True, "Only the first statement is consistent with the data. The answer is A.")
add("mv_str", "math", "B", C, True, "Options A, C and D each fail one of the conditions. Final answer is B")
add("mv_str", "math", "A", C, True, "A. Because B is not valid")
add(["mv_str", "hand"], "math", "B", C, False, "A. Because B is not valid")
R_OPT = r"Between the options, (A) and (C) both look plausible, but substituting $x = 2$ rules out (A). "
add("hand", "math", "(C)", C, True, R_OPT + "The correct option is (C).")
add("hand", "math", "(C)", C, False, R_OPT.replace("rules out (A)", "rules out (C)") + "The correct option is (A).")
S169 = MATH["intermediate_algebra/169"][1]
for cand, lab in [(r"\text{A, D}", True), (r"\text{D,A}", True), ("A", False), (r"\text{A,C,D}", False)]:
    add("math:intermediate_algebra/169", "math", gold_of("intermediate_algebra/169"), C, lab,
        sol_boxed("intermediate_algebra/169", cand))
add("hand", "math", "B", C, True, r"The total is $4! = 24$, which is listed as option (B). The answer is (B) 24.")
add("hand", "math", "B", C, False, r"The total is $4 \cdot 3 = 12$, which matches option (D). I think it's D.")

# ============================================================================================
# percent  (percent sign or \% on one side only)
# ============================================================================================
C = "percent"
for cand, lab in [("44", True), ("144\\%", False), ("40\\%", False)]:
    add("math:algebra/1820", "math", gold_of("algebra/1820"), C, lab, sol_boxed("algebra/1820", cand))
S1820 = MATH["algebra/1820"][1]
add("math:algebra/1820", "math", gold_of("algebra/1820"), C, True,
    S1820[:S1820.index("The area increases by")] + "So the area increases by 44 percent.")
S1400 = MATH["prealgebra/1400"][1]
S1400 = S1400[:S1400.index("making for")]
for tail, lab in [("making for a total loss of 28 percent", True), ("making for a total loss of 28 pct", True),
                  ("making for a total loss of $28$ %", True), (r"making for a total loss of $\boxed{28 percent}$", True),
                  (r"making for a total loss of $\boxed{30\%}$", False), (r"so the stock is now worth $\boxed{72\%}$", False)]:
    add(["math:prealgebra/1400", "mv_all"], "math", gold_of("prealgebra/1400"), C, lab, S1400 + tail + ".")
for cand, lab in [("7.2", True), ("72\\%", False), ("0.072\\%", False), ("7.2 \\text{ percent}", True), ("7.3\\%", False)]:
    add("math:geometry/1032", "math", gold_of("geometry/1032"), C, lab, sol_boxed("geometry/1032", cand))
for cand, lab in [("198", True), ("99\\%", False)]:
    add("math:prealgebra/1440", "math", gold_of("prealgebra/1440"), C, lab, sol_boxed("prealgebra/1440", cand))
R125 = r"The discount is $\frac{5}{40} = \frac{1}{8}$ of the price, so the percent discount is "
add("hand", "math", "12.5", C, True, R125 + r"$\boxed{12.5\%}$.")
add("hand", "math", r"12.5\%", C, True, R125 + r"$\boxed{12.5}$.")
add("hand", "math", r"12.5\%", C, False, R125 + r"$\boxed{1.25\%}$.")
add("mv_all", "math", "20", C, True,
    r"The percentage of people who are children is $$\frac{\frac{A}{4}}{\frac{5A}{4}}=\frac{1}{5}=\boxed{20 \%}. $$")
add(["mv_all", "hand"], "math", r"20\%", C, False,
    r"The percentage of people who are children is $$\frac{\frac{A}{4}}{A}=\frac{1}{4}=\boxed{25 \%}. $$")
add(["mv_all", "math:algebra/2397"], "math", r"100\%", C, True,
    r"Halving the error in momentum doubles the minimum error in position, an increase of $\boxed{100}$ percent.")

# ============================================================================================
# text_wrapped  (answers with \text{})
# ============================================================================================
C = "text_wrapped"
R_1213 = (r"We have that \begin{align*} \sqrt{30} + \sqrt{50} &= \sqrt{30} + 5\sqrt{2} \\ &\approx 5.477 + 7.071 \\ "
          r"&\approx 12.548. \end{align*}Therefore, the sum lies between 12 and 13.")
add("mv_all", "math", r"12\text{ and }13", C, True,
    R_1213 + NL + "Final Answer: The final answer is \"$12 $ and $13 $\". I hope it is correct.")
add(["mv_all", "hand"], "math", r"12\text{ and }13", C, False,
    R_1213.replace("5.477 + 7.071", "5.477 + 5.657").replace("12.548", "11.134").replace("between 12 and 13", "between 11 and 12") +
    NL + "Final Answer: The final answer is 11 and 12. I hope it is correct.")
for cand, lab in [("19, 43", True), (r"43 \text{ and } 19", True), (r"17 \text{ and } 41", False), ("19", False)]:
    add("math:algebra/2329", "math", gold_of("algebra/2329"), C, lab, sol_boxed("algebra/2329", cand))
add("mv_all", "math", gold_of("algebra/1349"), C, True, MATH["algebra/1349"][1])
add("math:algebra/1349", "math", gold_of("algebra/1349"), C, False, sol_boxed("algebra/1349", r"\text{Carla}"))
S1349 = MATH["algebra/1349"][1]
add("math:algebra/1349", "math", gold_of("algebra/1349"), C, True,
    S1349[:S1349.index("Therefore")] + "The answer is Evelyn.")
for mid, cand, lab in [("intermediate_algebra/10", r"\text{neither}", True), ("intermediate_algebra/10", "neither", True),
                       ("intermediate_algebra/300", r"\text{circle}", True),
                       ("intermediate_algebra/300", r"\text{ellipse}", False),
                       ("algebra/2359", r"\text{June } 20", True), ("algebra/2359", r"\text{June 19}", False),
                       ("algebra/2664", r"\text{Monday}", True), ("algebra/2664", r"\text{Sunday}", False),
                       ("geometry/734", "13", True), ("geometry/734", "12", False), ("geometry/734", r"\text{12.8}", False),
                       ("algebra/1900", r"9\text{ a.m.}", True), ("algebra/1900", r"9\text{ p.m.}", False),
                       ("algebra/1900", r"\text{9:00 a.m.}", True),
                       ("algebra/2465", "VW", True), ("algebra/2465", r"\text{VWX}", False)]:
    src = "math:" + mid
    if mid == "geometry/734":
        src = ["math:" + mid, "mv_all"]
    add(src, "math", gold_of(mid), C, lab, sol_boxed(mid, cand))
add("math:intermediate_algebra/10", "math", gold_of("intermediate_algebra/10"), C, False,
    r"Since $3^x$ is positive for every $x$, the graph never crosses the $x$-axis, so I conclude that $f(x)$ is "
    r"$\boxed{\text{even}}$.")
add("mv_numina", "math", r"\text{odd}", C, True, r"Since $f(-x) = -f(x)$ for every $x$, the function is $odd$")
add("mv_numina", "math", r"\text{Even}", C, True, r"Since $g(-x) = g(x)$ for every $x$, the function is $Even$")
add("mv_yj", "math", r"19, 46, \text{and } 82", C, True, r"The three ages are $19, 46, \text{ and } 82$")
add("mv_yj", "math", r"19, 46, \text{and } 82", C, False, r"The three ages are $21, 36, \text{ and } 82$")

# ============================================================================================
# units  (cm, dollars, degrees, ...)
# ============================================================================================
C = "units"
R5 = r"The perimeter is $20\text{ cm}$ and all four sides are equal, so each side is "
add("hand", "math", r"5\text{ cm}", C, True, R5 + r"$\boxed{5}$.")
add("hand", "math", r"5\text{ cm}", C, True, R5 + r"$\boxed{5 \text{ cm}}$.")
add("hand", "math", r"5\text{ cm}", C, False, R5 + r"$\boxed{4 \text{ cm}}$.")
add("mv_all", "math", r"15\mbox{ cm}^2", C, True,
    R_TRI + r"Therefore, the area of the triangle is $$\frac{1}{2}\times 3 \times 10 = \boxed{15\mbox{ cm}^2}.$$")
add(["mv_all", "hand"], "math", r"15\mbox{ cm}^2", C, False,
    R_TRI + r"Therefore, the area of the triangle is $$3 \times 10 = \boxed{30\text{ cm}^2}.$$")
add("mv_all", "math", "125 miles", C, True, r"At 50 miles per hour for 2.5 hours, the distance is $\boxed{125\textnormal{ miles}}.$")
add(["mv_all", "hand"], "math", "125 miles", C, False, r"At 50 miles per hour for 2.5 hours, the distance is $\boxed{152\textnormal{ miles}}.$")
R_D5 = r"Each of the 4 friends pays an equal share of the $\$20$ bill, so each pays "
add("hand", "math", r"\$5.00", C, True, R_D5 + r"$\boxed{5}$.")
add("hand", "math", "5", C, True, R_D5 + r"$\boxed{\$5.00}$.")
add("hand", "math", "5", C, False, R_D5 + r"$\boxed{\$5.50}$ including the tip.")
for mid, cand, lab in [("geometry/37", "25", True), ("geometry/37", r"25 \text{ degrees}", True),
                       ("geometry/37", r"50^\circ", False), ("geometry/37", r"65^\circ", False),
                       ("geometry/279", r"90^{\circ}", True), ("geometry/279", r"116^\circ", False),
                       ("algebra/82", r"\$1,\!599", True), ("algebra/82", "1599", True), ("algebra/82", r"\$1,\!600", False),
                       ("algebra/1755", "16386.16", True), ("algebra/1755", r"\$16,\!386.20", False),
                       ("counting_and_probability/825", r"-\$0.5", True), ("counting_and_probability/825", "-0.50", True),
                       ("counting_and_probability/825", r"\$0.50", False),
                       ("geometry/901", "25", True), ("geometry/901", r"31 \text{ km}", False),
                       ("algebra/2091", "440", True), ("algebra/2091", "400", False),
                       ("algebra/1569", r"22\frac{2}{3}\text{ pounds}", True),
                       ("algebra/1569", r"\frac{17}{6}\text{ pounds}", False)]:
    add("math:" + mid, "math", gold_of(mid), C, lab, sol_boxed(mid, cand))
add("mv_all", "math", r"90^\circ", C, True,
    r"Therefore, \begin{align*} \angle BAC &= \angle BAD + \angle DAC \\ &= 50^\circ+40^\circ \\ &= \boxed{90^\circ}. \end{align*}")
add("mv_all", "math", "16386.20", C, True,
    r"Plugging these values into the formula, we get: \[A = 10000 \left(1.025\right)^{20}\] \[A \approx 16386.20\] "
    r"Rounded to the nearest cent, Paula's investment is worth $\boxed{\$16,\!386.20}$ at the end of the 5-year period.")

# ============================================================================================
# numeric_forms  (fractions, decimals, radicals, pi, scientific notation, mixed numbers, separators)
# ============================================================================================
C = "numeric_forms"
RH = r"The probability of heads on a fair coin is "
add("hand", "math", r"\frac{1}{2}", C, True, RH + r"$\boxed{0.5}$.")
add("hand", "math", r"\frac{1}{2}", C, True, RH + r"$\boxed{1/2}$.")
add("hand", "math", r"\frac{1}{2}", C, True, RH + r"$\boxed{\dfrac12}$.")
add("hand", "math", r"\frac{1}{2}", C, False, RH + r"$\boxed{0.05}$.")
add("hand", "math", r"\frac{1}{2}", C, False, answer="2")
add("hand", "math", r"\sqrt{8}", C, True, r"The diagonal of a square with side 2 is $2\sqrt{2}$.")
add("hand", "math", r"\sqrt{8}", C, False, answer=r"4\sqrt{2}")
for mid, cand, lab in [("geometry/8", r"\frac{4\pi}{3}", True), ("geometry/8", r"\frac{32}{3}\pi", False),
                       ("geometry/249", r"-16 + 8\pi", True), ("geometry/249", r"16 - 8\pi", False),
                       ("geometry/249", r"4\pi - 8", False),
                       ("counting_and_probability/105", r"6\tfrac{1}{5}", True),
                       ("counting_and_probability/105", r"6 \frac{1}{5}", True),
                       ("counting_and_probability/105", r"\frac{6}{5}", False),
                       ("counting_and_probability/105", r"6\frac{1}{6}", False),
                       ("prealgebra/1729", r"1\frac14", True), ("prealgebra/1729", r"1\frac{1}{5}", False)]:
    add("math:" + mid, "math", gold_of(mid), C, lab, sol_boxed(mid, cand))
RSCI = r"The mass is $3.2 \times 10^{2}$ grams times $10^{3}$ samples, i.e. "
add("hand", "math", "320000", C, True, RSCI + r"$\boxed{3.2 \times 10^5}$.")
add("hand", "math", "320000", C, False, RSCI + r"$\boxed{3.2 \times 10^{6}}$.")
add("hand", "math", r"2\frac{1}{2}", C, True, answer="2.5")
add("hand", "math", r"2\frac{1}{2}", C, True, answer=r"\frac{5}{2}")
add("hand", "math", r"2\frac{1}{2}", C, False, answer="1")
add("hand", "math", "1000", C, True, r"There are $10^3$ such codes, which is $\boxed{1,000}$.")
add("hand", "math", "1000", C, True, r"There are $10^3$ such codes, which is $\boxed{1{,}000}$.")
add("hand", "math", "1000", C, False, r"There are $10^4$ such codes, which is $\boxed{10,000}$.")
add("mv_all", "math", "7425000", C, True, answer="7,425,000")
add("mv_all", "math", "1000", C, True, answer="1 000")
add("mv_all", "math", "0.4", C, True, answer=".4")
add(["mv_all", "hand"], "math", "0.4", C, False, answer=".04")
add("mv_all", "math", "1000.99", C, True, r"After the fee is refunded, the balance is $\boxed{\$1,000.99}$.")
add("mv_all", "math", "4", C, False, answer=r"4\sqrt{2}")
add("qw", "math", "2", C, False, answer=r"\frac{1+\sqrt{5}}{2}")
add("qw", "math", r"1\sqrt{19}", C, False, answer="1")
add("hm", "math", r"\tfrac83", C, True, r"Dividing, the ratio is $\boxed{\frac{8}{3}}$.")
add("hm", "math", r"\frac34i", C, True, r"Taking the imaginary part, the answer is $\boxed{\frac{3}{4}i}$.")
add("hm", "math", r"10\sqrt{3} + \sqrt4", C, True, answer=r"10\sqrt3 + \sqrt{4}")
add("hm", "math", r"\tfrac{1}{2} + \frac1{72}", C, False, answer=r"\frac{1}{2} + 2/3")
add("hm", "math", "0.1", C, True, answer=".1")
add("hand", "math", r"\frac{1}{3}", C, True, r"Long division of 1 by 3 gives $\boxed{0.\overline{3}}$.")
add("hand", "math", r"\frac{10}{9}", C, True, r"Long division gives $\boxed{1.\overline{1}}$.")
add("hand", "math", r"\frac{10}{9}", C, False, r"Rounding, the quotient is $\boxed{1.1}$.")
add("mv_all", "math", "10/9", C, True, r"Simplifying, we get $\boxed{\frac{10}{9}}$.")
add("mv_all", "math", "-10/9", C, True, r"Simplifying, we get $\boxed{-\frac{10}{9}}$.")
add("hand", "math", r"26\pi", C, False, r"The circumference is $2 \pi r$ with $r = 13$, so the answer is $\boxed{26}$.")

# ============================================================================================
# tuple_interval_set  (ordered pairs/tuples, intervals, sets, unions)
# ============================================================================================
C = "tuple_interval_set"
R01 = r"The expression is defined for $x \ge 0$ and we need $x < 1$ for the denominator, so the domain is "
add("mv_all", "math", "[0,1)", C, True, R01 + r"$[0,1)$")
add("mv_all", "math", "[0,9)", C, False, R01 + r"$[0,1)$")
add("mv_all", "math", "(0,9)", C, False, r"Including the left endpoint, the solution set is $[0,9)$")
S807 = MATH["precalculus/807"][1]
add(["math:precalculus/807", "mv_all"], "math", gold_of("precalculus/807"), C, True, S807)
add("math:precalculus/807", "math", gold_of("precalculus/807"), C, False,
    sol_boxed("precalculus/807", r"\left( \frac{\pi}{2}, 3 \right)"))
add("math:precalculus/807", "math", gold_of("precalculus/807"), C, False,
    sol_boxed("precalculus/807", r"\left( 3, \frac{3\pi}{2} \right)"))
add(["math:algebra/1144", "qw"], "math", gold_of("algebra/1144"), C, True, sol_boxed("algebra/1144", "(1, 4.5)"))
add("math:algebra/1144", "math", gold_of("algebra/1144"), C, False, sol_boxed("algebra/1144", r"\left(4,\frac{3}{2}\right)"))
RU = r"The function is undefined at $x=-\frac12$, $x = 0$ and $x = 1$, and we need $x \ge -1$. The solution set is "
GU = r"[-1, -\frac{1}{2}) \cup (-\frac{1}{2}, 0) \cup (0, 1) \cup (1, \infty)"
add("mv_all", "math", GU, C, True, RU + r"$\boxed{[-1, -\tfrac12) \cup (-\tfrac12, 0) \cup (0, 1) \cup (1, \infty)}.$")
add(["mv_all", "hand"], "math", GU, C, False, RU + r"$\boxed{(-1, -\tfrac12) \cup (-\tfrac12, 0) \cup (0, 1) \cup (1, \infty)}.$")
RS = r"The roots of $P(x)$ are $-2$ and $1 \pm \sqrt{5}$, so the answer is "
add("mv_all", "math", r"\{1\pm\sqrt{5},-2\}", C, True, RS + r"$\boxed{\{1\pm\sqrt{5},-2\}}.$")
add(["mv_all", "hand"], "math", r"\{1\pm\sqrt{5},-2\}", C, False, RS + r"$\boxed{\{1+\sqrt{5},-2\}}.$")
for mid, cand, lab in [("algebra/318", r"(-\infty, 0) \cup (0, \infty)", True), ("algebra/318", r"(-\infty,\infty)", False),
                       ("algebra/2438", r"[5,\infty)\cup(-\infty,-5]", True),
                       ("algebra/2438", r"(-\infty,-5)\cup(5,\infty)", False),
                       ("algebra/126", "(15, -11)", True), ("algebra/126", "(-11, 15)", False),
                       ("algebra/1810", r"[\frac12, \frac43]", True),
                       ("algebra/1810", r"\left(\frac12,\frac43\right)", False),
                       ("algebra/1810", r"\left[\frac{1}{2}, \frac{3}{4}\right]", False),
                       ("algebra/2486", r"(\frac{3}{5}, \frac{8}{3}]", True),
                       ("algebra/2486", r"\left[\frac35,\frac83\right]", False),
                       ("precalculus/584", r"\left(-\frac{1}{3},\frac{4}{3}\right)", False)]:
    add("math:" + mid, "math", gold_of(mid), C, lab, sol_boxed(mid, cand))
add(["math:precalculus/584", "mv_all"], "math", gold_of("precalculus/584"), C, True, MATH["precalculus/584"][1])
add("hand", "math", r"\{1, 2, 3\}", C, True, r"The elements common to both sets are $\boxed{\{3, 2, 1\}}$.")
add("hand", "math", r"\{1, 2, 3\}", C, False, r"The elements common to both sets are $\boxed{\{1, 2\}}$.")
G4 = r"(37,3,3,13),(17,3,3,7),(3,37,3,13),(3,17,3,7),(3,3,2,3)"
R4 = r"Checking all prime quadruples, the solutions are "
add("mv_numina", "math", G4, C, True,
    R4 + r"$\boxed{(3, 37, 3, 13), (3, 17, 3, 7), (3, 3, 2, 3), (3,17,3,7), (17,3,3,7), (37,3,3,13)}$")
add(["mv_numina", "hand"], "math", G4, C, False,
    R4 + r"$\boxed{(3, 37, 3, 13), (3, 17, 3, 7), (17,3,3,7), (37,3,3,13)}$")
add("hand", "math", r"(-\infty, -2) \cup (3, \infty)", C, False,
    r"The rational function is positive for $x < -2$ and for $x \ge 3$, so the answer is $(-\infty,-2)\cup[3,\infty)$.")

# ============================================================================================
# expression  (polynomials, equations, expressions in variables)
# ============================================================================================
C = "expression"
add(["mv_all", "hand"], "math", "2-2p", C, True, R_P + r"\boxed{-2p+2}$.")
for mid, cand, lab in [("precalculus/323", "y=2x+3", True), ("precalculus/323", "y = 2x - 3", False),
                       ("precalculus/323", "y = 3x + 2", False),
                       ("precalculus/659", "5x-7y+11z+4=0", True), ("precalculus/659", "5x - 7y + 11z - 4 = 0", False),
                       ("algebra/293", r"36x\sqrt{35x}", True), ("algebra/293", r"36\sqrt{35x}", False),
                       ("algebra/293", r"6x\sqrt{35x}", False),
                       ("intermediate_algebra/1723", r"y=-\frac{1}{2}x^2+4x-6", True),
                       ("intermediate_algebra/1723", r"y = -\frac{x^2}{2} + 4x - 6", True),
                       ("intermediate_algebra/1723", r"y = \frac{1}{2} x^2 + 4x - 6", False),
                       ("intermediate_algebra/1723", r"y = -\frac12 x^2 + 4x + 6", False),
                       ("intermediate_algebra/992", "y = 3 + x", True), ("intermediate_algebra/992", "y = x - 3", False)]:
    add("math:" + mid, "math", gold_of(mid), C, lab, sol_boxed(mid, cand))
add("qw", "math", r"\frac{x+2}{7}", C, True, r"Splitting the numerator, the answer is $\boxed{\frac{x}{7}+\frac{2}{7}}$.")
add(["qw", "hand"], "math", r"\frac{x+2}{7}", C, False, r"Splitting the numerator, the answer is $\boxed{\frac{x}{7}+2}$.")
add("qw", "math", r"\tan^2(y)+1", C, True, r"Using the Pythagorean identity, this equals $\boxed{\sec^2(y)}$.")
add(["qw", "hand"], "math", r"\tan^2(y)+1", C, False, r"Using the Pythagorean identity, this equals $\boxed{\csc^2(y)}$.")
add("hm", "math", r"\left(x-2\right)\left(x+2\right)", C, True, r"By difference of squares, $x^2 - 4 = \boxed{(x-2)(x+2)}$.")
add(["hm", "hand"], "math", r"\left(x-2\right)\left(x+2\right)", C, False, r"Factoring, $x^2 - 4x + 4 = \boxed{(x-2)^2}$.")
add(["hm", "math:precalculus/659"], "math", gold_of("precalculus/659"), C, False, sol_boxed("precalculus/659", "x + y - z + 2 = 0"))
add("qw", "math", "x+2n+1", C, False, answer="x+1")
add("qw", "math", "(a+5)(b+2)", C, False, answer="(+5)(b+2)")
add("mv_yj", "math", r"1 - \frac{1}{\mathrm{e}}", C, False,
    r"The probability that at least one event occurs tends to $1 + \frac{1}{\mathrm{e}}$")
add("mv_yj", "math", r"1 - \frac{1}{\mathrm{e}}", C, True,
    r"The probability that at least one event occurs tends to $1 - \frac{1}{\mathrm{e}}$")
RP = r"Expanding $(x+2)(x+5)$ gives "
add("hand", "math", "x^2+7x+10", C, True, RP + r"$\boxed{x^2 + 7x + 10}$.")
add("hand", "math", "x^2+7x+10", C, True, RP + r"$\boxed{10+7x+x^2}$.")
add("hand", "math", "x^2+7x+10", C, False, RP + r"$\boxed{x^2+7x-10}$.")
add("qw", "math", r"\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{15+2\sqrt{33}}", C, True,
    r"Rationalizing gives $\boxed{\frac{\sqrt{\sqrt{11}+\sqrt{194}}}{2\sqrt{33}+15}}$.")

# ============================================================================================
# gsm8k  (GSM8K-style completions; gold is a plain number; stop strings "\n\nQuestion:" / "Question:")
# ============================================================================================
C = "gsm8k"


def g(k, label, tail, chain=None):
    add("gsm:%d" % k, "gsm8k", GSM[k][0], C, label, completion=(gsm_chain(k) if chain is None else chain) + tail)


Q_NEXT = (NL + NL + "Question: A farmer has 3 cows and buys 9 more. How many cows does he have now?" + NL +
          "Answer: He has 3 + 9 = 12 cows. The answer is 12.")
g(0, True, NL + "#### 18")
g(0, True, NL + "The answer is $18.")
g(0, True, NL + "The answer is 18.00 dollars.")
g(0, False, NL + "With the tip she makes $18.50 a day. The answer is 18.50.")
g(0, False, NL + "#### 20")
g(0, True, "", chain="Janet sells 16 - 3 - 4 = 9 duck eggs a day." + NL +
  "So she makes 9 * 2 = $18 every day at the farmers' market.")
g(1, True, NL + "The answer is 3.")
g(1, False, "", chain="It takes 2 bolts of white fiber as well, so 2 + 2 = 4 bolts in total." + NL + "The answer is 4.")
g(2, True, NL + "The answer is $70,000.")
g(2, True, NL + "#### 70,000")
g(2, False, "", chain="The house is now worth 80,000 * 2.5 = $200,000." + NL + "#### 200,000")
g(2, False, "", chain="The value increased by 80,000 * 1.5 = 120,000, minus repairs gives a profit of $7,000." +
  NL + "#### 7000")
g(3, True, NL + "He runs 540 meters a week." + NL + "The answer is 540.")
g(3, False, "", chain="He runs 3 * 60 = 180 meters per session." + NL + "The answer is 180.")
g(4, True, "")
g(4, False, "", chain="She needs 3 * 20 = 60 cups in total and gave 15 + 20 = 35, so 60 - 35 = 25 cups." + NL +
  "The answer is 25.")
g(5, True, NL + "Kylar needs to pay $64.00 for the glasses.")
g(5, False, "", chain="Sixteen glasses at $5 each cost 16 * 5 = $80." + NL + "#### 80")
g(6, True, NL + "The answer is 260." + Q_NEXT)
g(6, False, "", chain="Charleston has 4 * 20 = 80 sheep and Toulouse has 2 * 80 = 160 sheep." + NL +
  "The answer is 160." + NL + NL + "Question: How many sheep do the three cities have together?" + NL +
  "Answer: 20 + 80 + 160 = 260. The answer is 260.")
g(8, True, NL + "#### 45")
g(8, False, "", chain=gsm_chain(8).rsplit(NL, 1)[0] + NL + "#### 135")
g(9, True, NL + "Eliza earns $460 this week.")
g(9, False, "", chain="Her regular weekly earning is $10 x 40 = $400." + NL + "So Eliza earns $400.")
g(11, True, NL + "#### 694")
g(11, False, NL + "#### 649")
g(12, True, NL + "#### 13")
g(12, False, "", chain=gsm_chain(12).rsplit(NL, 1)[0] + NL + "So he will start earning money after 12 years." + NL +
  "The answer is 12.")
g(17, True, NL + "#### 57,500")
g(17, True, NL + "#### 57500.00")
g(17, False, NL + "#### 5750")
g(18, True, NL + "The answer is 7 dozen.")
g(18, False, "", chain="She eats 3*7 = 21 eggs a week, so after 4 weeks she will have eaten 4*21 = 84 eggs." + NL +
  "The answer is 84.")
g(21, True, NL + "The answer is 14.Question: Raymond's son is now how old?" + NL + "Answer: The answer is 17.")
g(24, True, NL + "The original price was $26.00.")
g(24, False, "", chain="The original price is 19.50 * 1.25 = $24.375, which rounds to $24.38." + NL +
  "The answer is 24.38.")
g(26, True, NL + "#### 243")
g(61, True, NL + "The answer is 1430.")
g(61, False, "", chain="The total cost of the brooch was 500 + 800 = $1300." + NL + "The answer is 1300.")
g(146, True, NL + "#### 2125")
g(146, False, "", chain="The third set had 500 * .05 = 25 pieces, so 500 + 1500 + 25 = 2025 blocks." + NL + "#### 2,025")
g(201, True, NL + "The answer is $114,200.")
g(201, False, "", chain=gsm_chain(201).rsplit(NL, 1)[0] + NL + "The answer is $109,200.")
g(230, True, NL + "#### 276000")
g(230, False, "", chain=gsm_chain(230).rsplit(NL, 2)[0] + NL + "#### 264,000")
add("gsm:0", "gsm8k", "18", C, True, answer="18.0")
add("gsm:0", "gsm8k", "18", C, True, answer="$18")
add("gsm:0", "gsm8k", "18", C, False, answer="18.01")
add("ar", "gsm8k", "4", C, True, "The answer is 4")
add("ar", "gsm8k", "4", C, False, "The answer is 5")
add("ar", "gsm8k", "4", C, True, "Step 1: 2+2=4. \\boxed{4}")
add("ar", "gsm8k", "3", C, True, "Subtracting 2 from both sides, x = 3")
add("ar", "gsm8k", "42", C, True, "Step 1: Calculate" + NL + "Step 2: Simplify" + NL + "Final answer: 42")

# ============================================================================================
# no_answer  (no final answer at all; always false)
# ============================================================================================
C = "no_answer"
add("math:algebra/1", "math", "2", C, False, "")
add("ar", "gsm8k", "4", C, False, "")
add("hand", "math", r"\frac{1}{2}", C, False, "I'm sorry, but I can't help with that.")
add("math:algebra/2036", "math", gold_of("algebra/2036"), C, False,
    r"We use the distance formula: $\sqrt{(2-(-4))^2 + ((-6)-3)^2}$, so we need to compute")
add("hand", "math", "7", C, False, r"Adding the two equations eliminates $y$. Therefore the answer is $\boxed{}$.")
add("hand", "math", "5", C, False, "Final Answer: The final answer is $$. I hope it is correct.")
add("hand", "math", "12", C, False, "Let me think step by step.")
add("hand", "math", "3", C, False, r"Completing the square, the minimum occurs at the vertex. The final answer is \boxed{")
add("gsm:0", "gsm8k", "18", C, False, "Let's think step by step.")
add("ar", "gsm8k", "4", C, False, "The answer is !!!invalid!!!")
add("hand", "math", "5", C, False,
    "Let me think." + NL + NL + "Problem:" + NL + "Compute $2+3$." + NL + NL + "Solution:" + NL + "$2+3=5$." + NL +
    "Final Answer: The final answer is $5$. I hope it is correct.")
add("gsm:0", "gsm8k", "18", C, False,
    "Let me work this out." + NL + NL + "Question: Tom has 9 apples and buys 9 more. How many apples does he have?" +
    NL + "Answer: 9 + 9 = 18. The answer is 18.")
add("hand", "gsm8k", "18", C, False, "Question: What is 9 * 2?" + NL + "Answer: 9 * 2 = 18. The answer is 18.")
add("hand", "math", "1", C, False, "<|im_end|>")
add("math:algebra/1", "math", "2", C, False,
    r"We need to find the number of vertical asymptotes of $y=\frac{2}{x^2+x-6}$.")
add("gsm:0", "gsm8k", "18", C, False, "Janet sells 16 - 3 - 4 = 9 duck eggs a day. She makes 9 * 2 =")
add("hand", "math", "0", C, False, "After simplifying, the answer is")
add("hand", "math", "3", C, False, "Final Answer: The final answer is . I hope it is correct.")
add("hand", "math", "1", C, False,
    "Let me draw the figure first." + NL + "[asy]" + NL + "draw((0,0)--(1,1));" + NL + "[/asy]")

# ============================================================================================
# adversarial  (hostile or pathological candidates; always false; gold is an ordinary answer)
# ============================================================================================
C = "adversarial"
A = "hand"
add(A, "math", "9", C, False, r"Stacking the exponents, the answer is $\boxed{9^{9^{9^{9}}}}$.")
add(A, "math", "387420489", C, False, r"Stacking the exponents, the answer is $\boxed{9^{9^{9^{9}}}}$.")
add(A, "math", "1", C, False, r"The number of arrangements is $\boxed{(10^{100})!}$.")
add(A, "math", "1", C, False, r"The answer is $\boxed{" + "1" * 50000 + "}$.")
add(A, "gsm8k", "18", C, False, "The answer is " + "9" * 50000 + ".")
add(A, "math", "8", C, False, r"The answer is $\boxed{" + "{" * 200 + "7" + "}" * 200 + "}$.")
add(A, "math", "6", C, False, "The answer is $\\boxed{4\x005}$.")
add(A, "math", "0", C, False, "Final Answer: The final answer is $\x00\x00\x00$. I hope it is correct.")
add(A, "math", "12", C, False, r"The answer is $\boxed{__import__('os').system('ls')}$.")
add(A, "gsm8k", "18", C, False, "The answer is __import__('os').system('echo pwned').")
add(A, "math", "4", C, False, r"The answer is $\boxed{\boxed{\boxed{3}}}$.")
add(A, "math", "4", C, False, r"The answer is $" + r"\boxed{" * 500 + "3" + "}" * 500 + "$.")
add(A, "math", r"\frac{1}{3}", C, False, r"The answer is $\boxed{\frac{1}{2}$.")
add(A, "math", "5", C, False, r"The answer is $\boxed{{{{3}$.")
add(A, "math", "0", C, False, r"The answer is $\boxed{\frac{1}{0}}$.")
add(A, "math", "0", C, False, r"The answer is $\boxed{0/0}$.")
add(A, "math", "1000000", C, False, r"The answer is $\boxed{\infty}$.")
add(A, "math", "10000000000", C, False, r"The answer is $\boxed{10^{10^{10^{10}}}}$.")
add(A, "math", "1", C, False, r"The answer is $\boxed{" + r"\sqrt{" * 200 + "2" + "}" * 200 + "}$.")
add(A, "math", "2", C, False, r"The answer is $\boxed{x^{x^{x^{x^{x}}}}}$.")
add(A, "math", "1", C, False, r"The answer is $\boxed{\def\x{\x}\x}$.")
add(A, "math", "1", C, False, r"The answer is $\boxed{\input{/etc/passwd}}$.")
add(A, "math", r"\text{a}", C, False, r"The answer is $\boxed{\text{" + "a" * 50000 + "}}$.")
add(A, "math", r"\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}", C, False,
    r"The matrix is $\boxed{\begin{pmatrix}" +
    r" \\ ".join(" & ".join("1" if i == j else "0" for j in range(100)) for i in range(100)) + r"\end{pmatrix}}$.")
add(A, "math", "2", C, False, r"\boxed{}" * 10000 + r" The answer is $\boxed{3}$.")
add(A, "math", "24", C, False, "The answer is $\\boxed{\uff14\uff12}$.")
add(A, "math", "7", C, False, r"The answer is $\boxed{1e999999999}$.")
add(A, "gsm8k", "18", C, False, "#### 1e308*10")

# ============================================================================================
# Output and self-checks
# ============================================================================================
CLASSES = ["final_answer_line", "boxed", "display_math", "sentence", "multiple_boxes", "relation", "matrix",
           "multiple_choice", "percent", "text_wrapped", "units", "numeric_forms", "tuple_interval_set",
           "expression", "gsm8k", "no_answer", "adversarial"]


def build():
    counters = Counter()
    rows = []
    for c in CASES:
        counters[c["prefix"]] += 1
        row = {"id": "%s-%03d" % (c["prefix"], counters[c["prefix"]]), "dataset": c["dataset"], "gold": c["gold"]}
        if c["completion"] is not None:
            row["completion"] = c["completion"]
        else:
            row["answer"] = c["answer"]
        row["label"] = c["label"]
        row["class"] = c["class"]
        row["source"] = c["source"]
        rows.append(row)
    return rows


def check(rows):
    assert len(rows) >= 420, len(rows)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    n_false = sum(not r["label"] for r in rows)
    assert n_false >= 0.4 * len(rows), (n_false, len(rows))
    assert sum("completion" in r for r in rows) >= 0.75 * len(rows)
    per = Counter(r["class"] for r in rows)
    assert set(per) == set(CLASSES), set(per) ^ set(CLASSES)
    for cls in CLASSES:
        labs = [r["label"] for r in rows if r["class"] == cls]
        assert len(labs) >= 15, (cls, len(labs))
        if cls in ("no_answer", "adversarial"):
            assert not any(labs), cls
        else:
            assert any(labs) and not all(labs), cls
    adv = per["adversarial"]
    assert 20 <= adv <= 30, adv
    for r in rows:
        assert r["dataset"] in ("math", "gsm8k")
        if r["dataset"] == "gsm8k":
            float(r["gold"].replace(",", ""))


def main():
    rows = build()
    check(rows)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=True) + "\n")
    per = Counter((r["class"], r["label"]) for r in rows)
    print("wrote %d cases to %s" % (len(rows), OUT))
    for cls in CLASSES:
        print("  %-20s true=%3d false=%3d" % (cls, per[(cls, True)], per[(cls, False)]))
    print("  total true=%d false=%d" % (sum(r["label"] for r in rows), sum(not r["label"] for r in rows)))


if __name__ == "__main__":
    main()
