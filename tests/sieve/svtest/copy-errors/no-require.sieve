require "fileinto";
fileinto :copy "INBOX.Archive";
