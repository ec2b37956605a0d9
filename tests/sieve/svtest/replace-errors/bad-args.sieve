require ["replace", "enclose"];
replace :subject "x";
enclose :headers "bad name:" "text";
replace :mime :mime "x";
