require ["variables", "fileinto", "regex", "relational", "comparator-i;ascii-numeric"];
if header :matches "subject" "[*] *" {
    set :lower :upperfirst "tag" "${1}";
    set "box" "INBOX.${tag}";
    fileinto "${box}";
}
if header :regex "from" "^(.*) <([^@]+)@(.*)>$" { set "who" "${2}"; }
if header :count "ge" :comparator "i;ascii-numeric" "received" "10" { discard; }
if string :value "gt" :comparator "i;ascii-numeric" "${who}" "5" { keep; }
set :length "n" "${who}";
set :quotewildcard "q" "a*b?c";
