/* scanner.c -- the Lox lexer.
 *
 * Owns: turning source text into tokens one at a time, on demand of the
 * compiler.  Errors come back as TOKEN_ERROR tokens whose text is the
 * message ("Unexpected character.", "Unterminated string."). */
#include <stdbool.h>
#include <string.h>

#include "scanner.h"

static struct {
    const char *start;          /* first character of the token being scanned */
    const char *current;
    int         line;
} sc;

void scanner_init(const char *source) {
    sc.start = source;
    sc.current = source;
    sc.line = 1;
}

static bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool at_end(void) { return *sc.current == '\0'; }

static char advance(void) { return *sc.current++; }

static char peek(void) { return *sc.current; }

static char peek_next(void) { return at_end() ? '\0' : sc.current[1]; }

static bool match(char expected) {
    if (at_end() || *sc.current != expected) return false;
    sc.current++;
    return true;
}

static Token make_token(TokenType type) {
    return (Token){ type, sc.start, (int)(sc.current - sc.start), sc.line };
}

static Token error_token(const char *message) {
    return (Token){ TOKEN_ERROR, message, (int)strlen(message), sc.line };
}

static void skip_whitespace(void) {
    for (;;) {
        switch (peek()) {
        case ' ': case '\r': case '\t':
            advance();
            break;
        case '\n':
            sc.line++;
            advance();
            break;
        case '/':
            if (peek_next() != '/') return;
            while (peek() != '\n' && !at_end()) advance();
            break;
        default:
            return;
        }
    }
}

/* Keywords, matched by a small hand-written trie on the first letters. */
static TokenType keyword_rest(int offset, const char *rest, TokenType type) {
    int n = (int)strlen(rest);
    if (sc.current - sc.start == offset + n && memcmp(sc.start + offset, rest, (size_t)n) == 0)
        return type;
    return TOKEN_IDENTIFIER;
}

static TokenType identifier_type(void) {
    long length = sc.current - sc.start;
    switch (sc.start[0]) {
    case 'a': return keyword_rest(1, "nd", TOKEN_AND);
    case 'c': return keyword_rest(1, "lass", TOKEN_CLASS);
    case 'e': return keyword_rest(1, "lse", TOKEN_ELSE);
    case 'f':
        if (length > 1) {
            switch (sc.start[1]) {
            case 'a': return keyword_rest(2, "lse", TOKEN_FALSE);
            case 'o': return keyword_rest(2, "r", TOKEN_FOR);
            case 'u': return keyword_rest(2, "n", TOKEN_FUN);
            }
        }
        break;
    case 'i': return keyword_rest(1, "f", TOKEN_IF);
    case 'n': return keyword_rest(1, "il", TOKEN_NIL);
    case 'o': return keyword_rest(1, "r", TOKEN_OR);
    case 'p': return keyword_rest(1, "rint", TOKEN_PRINT);
    case 'r': return keyword_rest(1, "eturn", TOKEN_RETURN);
    case 's': return keyword_rest(1, "uper", TOKEN_SUPER);
    case 't':
        if (length > 1) {
            switch (sc.start[1]) {
            case 'h': return keyword_rest(2, "is", TOKEN_THIS);
            case 'r': return keyword_rest(2, "ue", TOKEN_TRUE);
            }
        }
        break;
    case 'v': return keyword_rest(1, "ar", TOKEN_VAR);
    case 'w': return keyword_rest(1, "hile", TOKEN_WHILE);
    }
    return TOKEN_IDENTIFIER;
}

static Token identifier(void) {
    while (is_alpha(peek()) || is_digit(peek())) advance();
    return make_token(identifier_type());
}

static Token number(void) {
    while (is_digit(peek())) advance();
    if (peek() == '.' && is_digit(peek_next())) {
        advance();
        while (is_digit(peek())) advance();
    }
    return make_token(TOKEN_NUMBER);
}

static Token string(void) {
    while (peek() != '"' && !at_end()) {
        if (peek() == '\n') sc.line++;
        advance();
    }
    if (at_end()) return error_token("Unterminated string.");
    advance();                  /* the closing quote */
    return make_token(TOKEN_STRING);
}

Token scan_token(void) {
    skip_whitespace();
    sc.start = sc.current;
    if (at_end()) return make_token(TOKEN_EOF);

    char c = advance();
    if (is_alpha(c)) return identifier();
    if (is_digit(c)) return number();

    switch (c) {
    case '(': return make_token(TOKEN_LEFT_PAREN);
    case ')': return make_token(TOKEN_RIGHT_PAREN);
    case '{': return make_token(TOKEN_LEFT_BRACE);
    case '}': return make_token(TOKEN_RIGHT_BRACE);
    case ';': return make_token(TOKEN_SEMICOLON);
    case ',': return make_token(TOKEN_COMMA);
    case '.': return make_token(TOKEN_DOT);
    case '-': return make_token(TOKEN_MINUS);
    case '+': return make_token(TOKEN_PLUS);
    case '/': return make_token(TOKEN_SLASH);
    case '*': return make_token(TOKEN_STAR);
    case '!': return make_token(match('=') ? TOKEN_BANG_EQUAL : TOKEN_BANG);
    case '=': return make_token(match('=') ? TOKEN_EQUAL_EQUAL : TOKEN_EQUAL);
    case '<': return make_token(match('=') ? TOKEN_LESS_EQUAL : TOKEN_LESS);
    case '>': return make_token(match('=') ? TOKEN_GREATER_EQUAL : TOKEN_GREATER);
    case '"': return string();
    }
    return error_token("Unexpected character.");
}
