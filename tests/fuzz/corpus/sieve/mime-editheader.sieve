require ["mime", "foreverypart", "editheader", "variables", "extracttext", "body", "imap4flags"];
foreverypart :name "outer" {
    if header :mime :type "content-type" "application" {
        if header :mime :param "filename" :matches "content-disposition" "*.exe" {
            addheader :last "X-Banned" "yes";
            break :name "outer";
        }
    }
    if header :mime :subtype "content-type" "plain" { extracttext :first 20 "snippet"; }
}
if body :text :contains "unsubscribe" { addflag "$Bulk"; }
deleteheader :index 1 :last "received";
addheader "X-Sieve" "${snippet}";
keep :flags ["\\Seen", "$label1"];
